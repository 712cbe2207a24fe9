package imapsrv_test

import (
	"strings"
	"testing"
)

func TestDelete(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")

	rc.ok(`CREATE Doomed`)
	ts.deliverN("alice", "Doomed", 3)
	uv := codeNumber(t, rc.ok(`SELECT Doomed`), "UIDVALIDITY")
	rc.ok(`UNSELECT`)
	rc.ok(`DELETE Doomed`)
	checkNames(t, "after DELETE", rc.ok(`LIST "" "Doomed"`))
	st := rc.fail("NO", `SELECT Doomed`)
	if !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("SELECT deleted: %q", st)
	}
	st = rc.fail("NO", `DELETE Doomed`)
	if !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("DELETE missing: %q", st)
	}

	// Created again: a new UIDVALIDITY, empty, UIDs from 1.
	rc.ok(`CREATE Doomed`)
	sel := rc.ok(`SELECT Doomed`)
	mustContain(t, sel, "* 0 EXISTS")
	if uv2 := codeNumber(t, sel, "UIDVALIDITY"); uv2 == uv {
		t.Errorf("UIDVALIDITY reused after DELETE and CREATE: %d", uv)
	}
	if n := codeNumber(t, sel, "UIDNEXT"); n != 1 {
		t.Errorf("UIDNEXT after re-create: %d", n)
	}
	rc.ok(`UNSELECT`)

	// INBOX cannot be deleted.
	rc.fail("NO", `DELETE INBOX`)
	rc.fail("NO", `delete inbox`)

	// A mailbox with children is not deleted (as on Dovecot); once the
	// children are gone, it is.
	rc.ok(`CREATE Parent/Child`)
	ts.deliverN("alice", "Parent/Child", 1)
	st = rc.fail("NO", `DELETE Parent`)
	if !strings.Contains(st, "[INUSE]") {
		t.Errorf("DELETE with children: %q", st)
	}
	mustContain(t, rc.ok(`STATUS Parent/Child (MESSAGES)`), "MESSAGES 1")
	checkNames(t, "after refused DELETE", rc.ok(`LIST "" "Parent*"`), "Parent", "Parent/Child")
	rc.ok(`DELETE Parent/Child`)
	rc.ok(`DELETE Parent`)
	checkNames(t, "after DELETE of both", rc.ok(`LIST "" "Parent*"`))

	// Deleting the selected mailbox from another session: the first one's
	// later commands do not crash.
	rc.ok(`CREATE Shared`)
	ts.deliverN("alice", "Shared", 2)
	rc.ok(`SELECT Shared`)
	other := ts.rawLogin("alice")
	other.ok(`DELETE Shared`)
	rc.cmd(`FETCH 1:* (FLAGS)`)
	// Its messages are gone for this session too.
	noop := rc.ok(`NOOP`)
	if got := grep(noop, "EXPUNGE"); len(got) != 2 || got[0] != "* 2 EXPUNGE" || got[1] != "* 1 EXPUNGE" {
		t.Errorf("after DELETE by another session: %q", noop)
	}
	rc.cmd(`STORE 1 +FLAGS (\Seen)`)
	mustContain(t, rc.ok(`SEARCH ALL`), "* SEARCH")
	// A new mailbox of the same name is another mailbox.
	other.ok(`CREATE Shared`)
	ts.deliverN("alice", "Shared", 1)
	mustNotContain(t, rc.ok(`NOOP`), "EXISTS")
	rc.ok(`SELECT INBOX`)
}
