package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"certmail/imapsrv"
)

// STORE (UNCHANGEDSINCE m), RFC 7162 3.1.3 and its example: messages
// changed after m are left alone and named in OK [MODIFIED set] (sequence
// numbers for STORE, UIDs for UID STORE); a .SILENT STORE still reports the
// MODSEQ of what it changed; with CONDSTORE on, STORE's FETCH responses
// carry MODSEQ.
func TestStoreUnchangedSince(t *testing.T) {
	ts := newTestServer(t)
	imapsrv.SetCondStore(ts.srv, true)
	ts.addUser("alice")
	for i := 1; i <= 9; i++ {
		ts.deliver("alice", "INBOX", simpleMessage(fmt.Sprint(i), "body"))
	}
	rc := ts.rawLogin("alice")
	hm := codeNumber(t, rc.ok(`SELECT INBOX (CONDSTORE)`), "HIGHESTMODSEQ")
	other := ts.client("alice")
	other.selectBox("INBOX")
	if err := other.Store(imap.SeqSetNum(7, 9), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	rc.ok(`NOOP`)

	untagged, status := rc.cmd(fmt.Sprintf(`STORE 7,5,9 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\Deleted)`, hm))
	if !strings.HasPrefix(status, "OK [MODIFIED 7,9]") {
		t.Fatalf("conditional STORE: %q", status)
	}
	mustContain(t, untagged, fmt.Sprintf(`* 5 FETCH (UID 5 MODSEQ (%d))`, hm+2))
	for _, l := range untagged {
		if strings.Contains(l, "FLAGS") || strings.Contains(l, "* 7 ") || strings.Contains(l, "* 9 ") {
			t.Fatalf("unexpected %q", l)
		}
	}
	flags := rc.ok(`FETCH 5,7,9 (FLAGS)`)
	mustContain(t, flags, `* 5 FETCH (UID 5 FLAGS (\Deleted) MODSEQ`)
	mustContain(t, flags, `* 7 FETCH (UID 7 FLAGS (\Seen) MODSEQ`)

	// UID STORE: MODIFIED names UIDs; a message that passes gets FLAGS and
	// MODSEQ.
	_, status = rc.cmd(fmt.Sprintf(`UID STORE 4,7 (UNCHANGEDSINCE %d) +FLAGS ($Done)`, hm))
	if !strings.HasPrefix(status, "OK [MODIFIED 7]") {
		t.Fatalf("UID STORE: %q", status)
	}
	// Unconditional STORE with CONDSTORE enabled: FLAGS and MODSEQ.
	mustContain(t, rc.ok(`STORE 1 +FLAGS (\Answered)`), `* 1 FETCH (UID 1 FLAGS (\Answered) MODSEQ (`)
	// Every message passing: plain OK.
	if _, status := rc.cmd(`STORE 2 (UNCHANGEDSINCE 999999) +FLAGS (\Flagged)`); !strings.HasPrefix(status, "OK") || strings.Contains(status, "MODIFIED") {
		t.Fatalf("STORE passing the test: %q", status)
	}
	rc.fail("BAD", `STORE 1 (NOSUCH 1) +FLAGS (\Seen)`)
}

// Without CONDSTORE on, STORE with a modifier is BAD.
func TestStoreUnchangedSinceOff(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("one", "body"))
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	rc.fail("BAD", `STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\Seen)`)
	mustNotContain(t, rc.ok(`STORE 1 +FLAGS (\Seen)`), "MODSEQ")
}
