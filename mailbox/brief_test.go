package mailbox

import (
	"fmt"
	"testing"
	"time"

	"certmail/kv/pgkv"
)

// TestBriefOpen: a store opened Brief (a command: `certmail deliver` from
// an MTA's pipe, `user add`) on a shared database with 150 mailboxes that
// hold mail reads nothing per mailbox: its open costs a few round trips,
// where a node's (which collects orphaned messages) costs one or more a
// mailbox. It starts no follower and no background work, and still
// publishes what it writes: a following node hears of its delivery.
func TestBriefOpen(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	const accounts = 150
	a, err := Open(Options{Engine: engines.Reopen(t, dsn), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	for i := range accounts {
		acct := fmt.Sprintf("u%d", i)
		if err := a.CreateAccount(acct, "pw", DefaultMailboxes()); err != nil {
			t.Fatal(err)
		}
		appendN(t, a, acct, "INBOX", 1)
	}
	heard := make(chan Change, 16)
	a.OnChange(func(c Change) {
		if c.Kind == MessageAdded && c.Account == "u7" {
			heard <- c
		}
	})

	open := func(brief bool) (*Store, uint64, time.Duration) {
		t.Helper()
		e := engines.Reopen(t, dsn).(*pgkv.Engine)
		r0, t0 := e.Stats().RoundTrips, time.Now()
		s, err := Open(Options{Engine: e, GCInterval: -1, FollowInterval: -1, Brief: brief})
		if err != nil {
			t.Fatal(err)
		}
		d, rt := time.Since(t0), e.Stats().RoundTrips-r0
		t.Cleanup(func() { s.Close() })
		return s, rt, d
	}
	_, fullRT, fullD := open(false)
	b, briefRT, briefD := open(true)
	t.Logf("opening a store of %d mailboxes with mail: %d round trips, %v; Brief: %d, %v", accounts, fullRT, fullD, briefRT, briefD)
	if fullRT < accounts {
		t.Errorf("a full open took %d round trips; the test expects one or more a mailbox (the orphan scan)", fullRT)
	}
	if briefRT > 5 {
		t.Errorf("a Brief open took %d round trips; want a few, none per mailbox", briefRT)
	}
	appendN(t, b, "u7", "INBOX", 1)
	select {
	case <-heard:
	case <-time.After(5 * time.Second):
		t.Fatal("the node did not hear of the Brief store's delivery")
	}
}
