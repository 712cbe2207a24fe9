package imapsrv_test

import (
	"testing"
)

func TestUnselect(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)
	rc := ts.rawLogin("alice")
	rc.fail("BAD", `UNSELECT`)
	rc.ok(`SELECT INBOX`)
	rc.ok(`STORE 1 +FLAGS (\Deleted)`)
	// UNSELECT leaves \Deleted messages alone (unlike CLOSE).
	rc.ok(`unselect`)
	mustContain(t, rc.ok(`STATUS INBOX (MESSAGES DELETED)`), "MESSAGES 2", "DELETED 1")
	rc.fail("BAD", `FETCH 1 (FLAGS)`)
	// A new delivery while unselected is not announced.
	ts.deliverN("alice", "INBOX", 1)
	mustNotContain(t, rc.ok(`NOOP`), "EXISTS")
	mustContain(t, rc.ok(`SELECT INBOX`), "* 3 EXISTS")
}
