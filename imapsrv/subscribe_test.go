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
