package mailbox

import (
	"context"
	"testing"
	"time"

	"certmail/kv/pgkv"
)

// TestFollowCost: what following another node's commits costs a node,
// in PostgreSQL round trips and bytes per commit followed (the engine's
// exact counters), with the numbers logged. A wake-up reads only the
// newest bulletins (followWakeLookback): reading the whole window on each
// took 5 KB and 2.7 round trips per append followed, against 1.3 KB and
// 1.9 then.
//
// The appends are paced, 5 ms apart (200 a second): a wake-up's read
// covers the last followWakeLookback of bulletins, what committed late
// included, so the cost per append grows with the rate. Unpaced, appends
// now take 0.75 ms each, the window held 130 of the burst's 200, and a
// quiet machine read 4.2-5 KB per append followed (a loaded one, whose
// appends were slower, less), which no longer told the bug above apart.
func TestFollowCost(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	var engs []*pgkv.Engine
	var stores []*Store
	for range 2 {
		e, err := pgkv.Open(context.Background(), dsn, pgkv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Engine: e, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		engs, stores = append(engs, e), append(stores, s)
	}
	a, b := stores[0], stores[1]
	inbox := newAccount(t, a, "c")
	if _, err := b.Messages("c", inbox.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	feed := recordFeed(b)
	a0, b0 := engs[0].Stats(), engs[1].Stats()
	const n = 200
	start := time.Now()
	var last uint32
	const pace = 5 * time.Millisecond
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * pace)))
		last = appendOne(t, a, "c", "INBOX", nil)
	}
	feed.waitFor(t, 5*time.Second, "last", func(c Change) bool { return c.Kind == MessageAdded && c.Message.UID == last })
	el := time.Since(start)
	a1, b1 := engs[0].Stats(), engs[1].Stats()
	t.Logf("%d appends on A in %v: A %.2f round trips an append, B (following) %.2f round trips and %.0f bytes received an append",
		n, el, float64(a1.RoundTrips-a0.RoundTrips)/n, float64(b1.RoundTrips-b0.RoundTrips)/n, float64(b1.BytesReceived-b0.BytesReceived)/n)
	if rt, bytes := float64(b1.RoundTrips-b0.RoundTrips)/n, float64(b1.BytesReceived-b0.BytesReceived)/n; rt > 4 || bytes > 4000 {
		t.Errorf("following cost %.1f round trips and %.0f bytes per append", rt, bytes)
	}
}
