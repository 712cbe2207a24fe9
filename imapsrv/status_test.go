package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestStatus(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")

	// Thunderbird's STATUS, on an empty mailbox.
	st := rc.ok(`STATUS "Drafts" (UIDNEXT MESSAGES UNSEEN RECENT)`)
	if len(st) != 1 {
		t.Errorf("STATUS Drafts: %q", st)
	}
	mustContain(t, st, `* STATUS "Drafts" (`, "UIDNEXT 1", "MESSAGES 0", "UNSEEN 0", "RECENT 0")

	m1 := simpleMessage("one", "first")
	m2 := simpleMessage("two", "second message")
	m3 := simpleMessage("three", "third")
	ts.deliver("alice", "INBOX", m1)
	ts.deliver("alice", "INBOX", m2, `\Seen`)
	ts.deliver("alice", "INBOX", m3, `\Deleted`)
	size := len(m1) + len(m2) + len(m3)

	line := rc.ok(`STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT)`)
	l := mustContain(t, line, "* STATUS INBOX (")
	for _, want := range []string{"MESSAGES 3", "UIDNEXT 4", "UIDVALIDITY ", "UNSEEN 2", "DELETED 1",
		fmt.Sprintf("SIZE %d", size), "RECENT 3"} { // no session has selected INBOX since they arrived
		if !strings.Contains(l, want) {
			t.Errorf("STATUS INBOX: %q lacks %q", l, want)
		}
	}
	// UIDVALIDITY agrees with SELECT.
	uv := codeNumber(t, rc.ok(`EXAMINE INBOX`), "UIDVALIDITY")
	if !strings.Contains(l, fmt.Sprintf("UIDVALIDITY %d", uv)) {
		t.Errorf("STATUS UIDVALIDITY %q, SELECT says %d", l, uv)
	}
	// STATUS works on the selected mailbox too, lower case, and for
	// INBOX however spelled.
	mustContain(t, rc.ok(`status inbox (messages)`), "* STATUS INBOX (MESSAGES 3)")
	rc.ok(`UNSELECT`)

	// Errors.
	s := rc.fail("NO", `STATUS Nowhere (MESSAGES)`)
	if !strings.Contains(s, "[NONEXISTENT]") {
		t.Errorf("STATUS missing: %q", s)
	}
	rc.fail("BAD", `STATUS INBOX (BOGUS)`)
	rc.fail("BAD", `STATUS INBOX`)
	rc.alive()

	// Counters follow changes made over IMAP.
	rc.ok(`SELECT INBOX`)
	rc.ok(`STORE 1 +FLAGS (\Seen)`)
	rc.ok(`EXPUNGE`)
	mustContain(t, rc.ok(`STATUS INBOX (MESSAGES UNSEEN DELETED)`), "MESSAGES 2", "UNSEEN 0", "DELETED 0")
	mustContain(t, rc.ok(`STATUS INBOX (SIZE)`), fmt.Sprintf("SIZE %d", len(m1)+len(m2)))

	// The go-imap client.
	c := ts.client("alice")
	d, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, Size: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *d.NumMessages != 2 || d.UIDNext != 4 || d.UIDValidity != uv || *d.NumUnseen != 0 || *d.Size != int64(len(m1)+len(m2)) {
		t.Errorf("imapclient STATUS: %+v", d)
	}
}
