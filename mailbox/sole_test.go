package mailbox

import (
	"context"
	"slices"
	"testing"
	"time"

	"certmail/kv/pgkv"
)

// TestSoleNodeSkipsCatchUp: a node alone on its database takes the
// sole-writer lease (kv/pgkv/sole.go) and then answers without reading
// the change journal (CatchUp costs no round trip); a delivery through
// another process (a CLI command's store) takes the lease from it, and
// the node's next catch-up reads the journal again and finds the
// message. Then the node takes the lease again once that process is
// quiet.
func TestSoleNodeSkipsCatchUp(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	e, err := pgkv.Open(context.Background(), dsn, pgkv.Options{SoleQuiet: 100 * time.Millisecond, SoleTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(Options{Engine: e, GCInterval: -1, SoleLease: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	inbox := newAccount(t, n, "c")
	appendOne(t, n, "c", "INBOX", nil)
	if _, err := n.Messages("c", inbox.ID); err != nil {
		t.Fatal(err)
	}
	cli, err := Open(Options{Engine: engines.Reopen(t, dsn), GCInterval: -1, Brief: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })

	catchUpTrips := func() uint64 {
		before := e.Stats().RoundTrips
		if err := n.CatchUp(); err != nil {
			t.Fatal(err)
		}
		return e.Stats().RoundTrips - before
	}
	waitSole := func() {
		deadline := time.Now().Add(10 * time.Second)
		for catchUpTrips() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the node alone never answered without reading the journal")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for round := range 3 {
		waitSole()
		uid := appendOne(t, cli, "c", "INBOX", nil)
		if trips := catchUpTrips(); trips == 0 {
			t.Fatalf("round %d: after another process's delivery the node's catch-up read nothing", round)
		}
		msgs, err := n.Messages("c", inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(msgs, func(m *Message) bool { return m.UID == uid }) {
			t.Fatalf("round %d: the node's index lacks UID %d, delivered by another process before its catch-up", round, uid)
		}
	}
}
