package imapsrv_test

import (
	"strings"
	"testing"
	"time"
)

// TestNotifyMetadataAcrossNodes: two servers on one database. A session
// on B that asked for MailboxMetadataChange and ServerMetadataChange
// (RFC 5465 5.6) hears of SETMETADATA through A, on a mailbox and on the
// server, as the unsolicited METADATA responses of RFC 5464 4.4.2, as a
// session on A would: during IDLE, within a second.
func TestNotifyMetadataAcrossNodes(t *testing.T) {
	dsn := pg.DB(t)
	a := startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, dsn: dsn})
	b := startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, dsn: dsn})
	a.addUser("alice")

	onB := b.rawLogin("alice")
	onB.ok("SELECT INBOX")
	onB.ok(`NOTIFY SET (selected (MessageNew MessageExpunge MailboxMetadataChange)) (mailboxes Sent (MailboxMetadataChange)) (inboxes (ServerMetadataChange))`)
	onA := a.rawLogin("alice")

	start := time.Now()
	got := onB.idleLines(time.Second, func() {
		onA.ok(`SETMETADATA INBOX (/private/comment "mine")`)
		onA.ok(`SETMETADATA Sent (/shared/comment "sent mail")`)
		onA.ok(`SETMETADATA "" (/private/vendor/example/x "the server")`)
	})
	t.Logf("B heard in %v: %q", time.Since(start), got)
	var meta []string
	for _, l := range got {
		if strings.HasPrefix(l, "* METADATA") {
			meta = append(meta, l)
		}
	}
	want := []string{
		`* METADATA INBOX "/private/comment"`,
		`* METADATA "Sent" "/shared/comment"`,
		`* METADATA "" "/private/vendor/example/x"`,
	}
	if strings.Join(meta, "\n") != strings.Join(want, "\n") {
		t.Errorf("METADATA notifications on B:\n%s\nwant:\n%s", strings.Join(meta, "\n"), strings.Join(want, "\n"))
	}
}
