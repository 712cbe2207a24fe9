package imapsrv_test

import (
	"strings"
	"testing"
)

func TestSelect(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("a", "a"), `\Seen`)
	ts.deliver("alice", "INBOX", simpleMessage("b", "b"), `$Important`)
	ts.deliver("alice", "INBOX", simpleMessage("c", "c"), `\Seen`, `\Flagged`)
	rc := ts.rawLogin("alice")

	rc.ShowRecent = true
	sel := rc.ok(`SELECT INBOX`)
	rc.ShowRecent = false
	mustContain(t, sel, "* 3 EXISTS")
	uv := codeNumber(t, sel, "UIDVALIDITY")
	if uv == 0 {
		t.Errorf("UIDVALIDITY 0")
	}
	if n := codeNumber(t, sel, "UIDNEXT"); n != 4 {
		t.Errorf("UIDNEXT: %d", n)
	}
	// IMAP4rev1 clients (no ENABLE IMAP4rev2) get RECENT and UNSEEN.
	// The first session to select the mailbox since the three
	// messages arrived has them as recent (RFC 3501 2.3.2).
	mustContain(t, sel, "* 3 RECENT")
	if n := codeNumber(t, sel, "UNSEEN"); n != 2 {
		t.Errorf("first unseen: %d", n)
	}
	flags := mustContain(t, sel, "* FLAGS (")
	for _, f := range []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, `$Important`} {
		if !strings.Contains(flags, f) {
			t.Errorf("FLAGS %q lacks %s", flags, f)
		}
	}
	perm := mustContain(t, sel, "[PERMANENTFLAGS (")
	if !strings.Contains(perm, `\*`) || !strings.Contains(perm, `\Seen`) {
		t.Errorf("PERMANENTFLAGS: %q", perm)
	}
	// The tagged OK says READ-WRITE.
	tag := rc.nextTag()
	rc.write(tag + " SELECT INBOX\r\n")
	untagged, status := rc.readUntilTagged(tag)
	if !strings.HasPrefix(status, "OK [READ-WRITE]") {
		t.Errorf("SELECT status: %q", status)
	}
	// Selecting while selected closes the previous mailbox first.
	mustContain(t, untagged, "[CLOSED]")

	// lower case and INBOX case-insensitive.
	mustContain(t, rc.ok(`select inbox`), "* 3 EXISTS")

	// A failed SELECT leaves no mailbox selected.
	s := rc.fail("NO", `SELECT Nowhere`)
	if !strings.Contains(s, "[NONEXISTENT]") {
		t.Errorf("SELECT missing: %q", s)
	}
	rc.fail("BAD", `FETCH 1 (FLAGS)`)
	rc.alive()

	// Other mailboxes.
	mustContain(t, rc.ok(`SELECT Trash`), "* 0 EXISTS")

	// The go-imap client.
	c := ts.client("alice")
	d := c.selectBox("INBOX")
	if d.NumMessages != 3 || d.UIDValidity != uv || d.UIDNext != 4 {
		t.Errorf("imapclient SELECT: %+v", d)
	}

	// With IMAP4rev2 enabled: no RECENT, no UNSEEN code.
	rc2 := ts.rawLogin("alice")
	rc2.ok(`ENABLE IMAP4rev2`)
	sel = rc2.ok(`SELECT INBOX`)
	mustNotContain(t, sel, "RECENT")
	mustNotContain(t, sel, "[UNSEEN")
	mustContain(t, sel, "* 3 EXISTS")
}

func TestExamine(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)
	ts.deliver("alice", "INBOX", simpleMessage("del", "del"), `\Deleted`)
	rc := ts.rawLogin("alice")

	tag := rc.nextTag()
	rc.write(tag + " EXAMINE INBOX\r\n")
	untagged, status := rc.readUntilTagged(tag)
	if !strings.HasPrefix(status, "OK [READ-ONLY]") {
		t.Errorf("EXAMINE status: %q", status)
	}
	mustContain(t, untagged, "* 3 EXISTS")

	// Read-only: STORE, EXPUNGE and MOVE are refused; the connection
	// survives.
	rc.fail("NO", `STORE 1 +FLAGS (\Flagged)`)
	rc.fail("NO", `UID STORE 1 +FLAGS (\Seen)`)
	rc.fail("NO", `EXPUNGE`)
	rc.fail("NO", `UID EXPUNGE 3`)
	rc.fail("NO", `MOVE 1 Trash`)
	// Reading the body does not set \Seen.
	f := rc.ok(`FETCH 1 (BODY[] FLAGS)`)
	mustNotContain(t, f, `\Seen`)
	mustNotContain(t, rc.ok(`FETCH 1 (FLAGS)`), `\Seen`)
	// COPY out of a read-only mailbox is fine.
	rc.ok(`COPY 1 Archive`)
	// CLOSE on a read-only mailbox closes it without expunging
	// (RFC 9051 6.4.1).
	rc.ok(`CLOSE`)
	mustContain(t, rc.ok(`STATUS INBOX (MESSAGES)`), "MESSAGES 3")
	mustContain(t, rc.ok(`STATUS Archive (MESSAGES)`), "MESSAGES 1")
	rc.fail("BAD", `FETCH 1 (FLAGS)`)

	// SELECT then CLOSE expunges silently.
	rc.ok(`SELECT INBOX`)
	cl := rc.ok(`CLOSE`)
	mustNotContain(t, cl, "EXPUNGE")
	mustContain(t, rc.ok(`STATUS INBOX (MESSAGES)`), "MESSAGES 2")

	// Another session's read-only view still gets updates.
	rc.ok(`EXAMINE INBOX`)
	ts.deliverN("alice", "INBOX", 1)
	mustContain(t, rc.ok(`NOOP`), "* 3 EXISTS")
}
