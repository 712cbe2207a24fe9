package imapsrv_test

import (
	"strings"
	"testing"
)

func TestSubscribe(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")

	rc.ok(`CREATE News`)
	checkNames(t, "not subscribed", rc.ok(`LIST (SUBSCRIBED) "" "News"`))
	rc.ok(`SUBSCRIBE News`)
	mustContain(t, rc.ok(`LIST (SUBSCRIBED) "" "News"`), `\Subscribed`)
	mustContain(t, rc.ok(`LSUB "" "News"`), `* LSUB`)
	rc.ok(`SUBSCRIBE News`) // idempotent
	rc.ok(`UNSUBSCRIBE News`)
	checkNames(t, "unsubscribed", rc.ok(`LSUB "" "News"`))
	rc.ok(`UNSUBSCRIBE News`) // idempotent
	rc.ok(`subscribe inbox`)
	// Subscribing to a mailbox that does not exist: the store ties
	// subscriptions to mailboxes, so it is refused with NO.
	if _, st := rc.cmd(`SUBSCRIBE Nowhere`); strings.HasPrefix(st, "BAD") {
		t.Errorf("SUBSCRIBE missing: %q", st)
	}
	rc.alive()
}

// TestSubscriptionSurvivesDelete: DELETE leaves the name subscribed (RFC
// 3501 6.3.9: a server MUST NOT remove a name from the subscription list
// because its mailbox is gone); LIST (SUBSCRIBED) shows it with
// \NonExistent and \Subscribed (RFC 5258 3.1), LSUB lists it, a plain
// LIST does not, UNSUBSCRIBE removes it, and a mailbox created again
// under the name is subscribed. Before, DELETE took the subscription
// with it.
func TestSubscriptionSurvivesDelete(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok(`CREATE Old`)
	rc.ok(`CREATE Old2`)
	rc.ok(`SUBSCRIBE Old`)
	rc.ok(`SUBSCRIBE Old2`)
	rc.ok(`DELETE Old`)
	rc.ok(`DELETE Old2`)

	ls := rc.ok(`LIST (SUBSCRIBED) "" "Old*"`)
	checkNames(t, `LIST (SUBSCRIBED)`, ls, "Old", "Old2")
	line := mustContain(t, ls, `"/" "Old"`)
	if !strings.Contains(line, `\NonExistent`) || !strings.Contains(line, `\Subscribed`) {
		t.Errorf("deleted subscribed mailbox: %q, want \\NonExistent \\Subscribed", line)
	}
	checkNames(t, `LSUB`, rc.ok(`LSUB "" "Old*"`), "Old", "Old2")
	checkNames(t, `plain LIST`, rc.ok(`LIST "" "Old*"`))
	// Not selectable, and STATUS in LIST-STATUS skips it.
	rc.fail("NO", `SELECT Old`)
	checkNames(t, `LIST (SUBSCRIBED) RETURN (STATUS)`, rc.ok(`LIST (SUBSCRIBED) "" "Old" RETURN (STATUS (MESSAGES))`), "Old")

	rc.ok(`UNSUBSCRIBE Old2`)
	checkNames(t, `after UNSUBSCRIBE`, rc.ok(`LSUB "" "Old*"`), "Old")
	rc.ok(`CREATE Old`)
	line = mustContain(t, rc.ok(`LIST (SUBSCRIBED) "" "Old*"`), `"/" "Old"`)
	if strings.Contains(line, `\NonExistent`) || !strings.Contains(line, `\Subscribed`) {
		t.Errorf("re-created mailbox: %q, want it subscribed and existing", line)
	}
}

// TestListRecursiveMatchChildInfo: RFC 5258 3.5 (imaptest listext): with
// SUBSCRIBED RECURSIVEMATCH, a mailbox is returned with CHILDINFO for a
// subscribed descendant only when the patterns do not match that
// descendant themselves.
func TestListRecursiveMatchChildInfo(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	for _, n := range []string{"t2/t1", "t7/t7", "t8/t8", "t8/t9"} {
		rc.ok(`CREATE ` + n)
		rc.ok(`SUBSCRIBE ` + n)
	}
	ls := rc.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" (t2 t2/t1)`)
	checkNames(t, "t2 and t2/t1", ls, "t2/t1")
	ls = rc.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" (t2)`)
	checkNames(t, "t2", ls, "t2")
	mustContain(t, ls, `"t2"`, `CHILDINFO ("SUBSCRIBED")`)
	checkNames(t, "*t7", rc.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "*t7"`), "t7/t7")
	ls = rc.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "*t8"`)
	checkNames(t, "*t8", ls, "t8", "t8/t8")
	mustContain(t, ls, `"t8"`, `CHILDINFO`)
}
