package notifier

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"certmail/kv"
	"certmail/kv/testengine"
	"certmail/mailbox"
)

// engines gives the tests of several nodes one PostgreSQL database
// (kv/testengine); the rest of the suite runs on memDB.
var engines testengine.Engines

func TestMain(m *testing.M) { os.Exit(engines.Main(m)) }

// subjectNotice is a mail notice whose Subject is its ID, so the sink can
// count each notice's copies.
func subjectNotice(id string) Notice {
	n := mailNotice(id)
	n.Subject = id
	return n
}

// TestLeaseCountsFromClaim: DeliverDue claims batch after batch with the
// now its round began with. A lease counted from that now, in a round
// that has run longer than the lease, has run out when taken: another
// node claimed the notice at once and both sent it.
func TestLeaseCountsFromClaim(t *testing.T) {
	sink := startSMTPSink(t, nil, "", "")
	db := newMemDB()
	cfg := Config{Relay: &Relay{Addr: sink.Addr}, Lease: 5 * time.Minute}
	a, b := newTestOutbox(t, db, cfg), newTestOutbox(t, db, cfg)
	roundStart := time.Now().Add(-10 * time.Minute) // a round that began long ago
	if err := db.Update(func(r kv.Records) error {
		return a.EnqueueAt(r, subjectNotice("n1"), roundStart.Add(-time.Minute))
	}); err != nil {
		t.Fatal(err)
	}
	claims, err := a.claimDue(roundStart)
	if err != nil || len(claims) != 1 {
		t.Fatalf("claim: %v, %d", err, len(claims))
	}
	if sent := deliver(t, b, time.Now()); sent != 0 {
		t.Fatalf("another sender took a notice claimed a moment ago: sent %d", sent)
	}
	if sent := deliver(t, b, time.Now().Add(6*time.Minute)); sent != 1 {
		t.Fatalf("notice not sent after the lease ran out: sent %d", sent)
	}
}

// TestSendStopsAtLeaseEnd: a batch whose sends take longer than the
// lease does not send the notices whose lease ran out meanwhile (another
// node may have taken them), nor send past a lease's end: with a second
// sender claiming whatever falls due, each notice reaches the relay once.
func TestSendStopsAtLeaseEnd(t *testing.T) {
	sink := startSMTPSink(t, nil, "", "")
	sink.SetMailDelay(600 * time.Millisecond)
	db := newMemDB()
	cfg := Config{Relay: &Relay{Addr: sink.Addr}, Lease: 1500 * time.Millisecond, BatchSize: 3,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond}
	a, b := newTestOutbox(t, db, cfg), newTestOutbox(t, db, cfg)
	ids := []string{"n1", "n2", "n3"}
	for _, id := range ids {
		enqueue(t, db, a, subjectNotice(id))
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.DeliverDue(context.Background(), time.Now()) // three sends of 600 ms or more, lease 1.5 s
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	// b starts once a has claimed the batch.
	for {
		next, ok, err := b.NextDue()
		if err != nil {
			t.Fatal(err)
		}
		if ok && next.After(time.Now()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first sender claimed nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for len(sink.Messages()) < len(ids) || db.pending(t) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("sent %v, %d pending", sink.Count(t), db.pending(t))
		}
		if _, err := b.DeliverDue(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	counts := sink.Count(t)
	t.Logf("sent %v", counts)
	for _, id := range ids {
		if counts[id] != 1 {
			t.Errorf("%s sent %d times, want once (all: %v)", id, counts[id], counts)
		}
	}
}

// TestNodesSendOnce (issue 13): three nodes on one PostgreSQL database
// run their outboxes' send loops at once over the same queue: each
// notice reaches the SMTP relay exactly once. Then a node claims notices
// and dies before sending them: no other node sends them while the lease
// holds, and another sends each once after it runs out.
func TestNodesSendOnce(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	sink := startSMTPSink(t, nil, "", "")
	const nodes, notices = 3, 60
	cfg := Config{Relay: &Relay{Addr: sink.Addr}, Lease: 2 * time.Second, BatchSize: 4, PollInterval: 100 * time.Millisecond}
	var stores []*mailbox.Store
	var dbs []kv.RecordStore
	var outboxes []*Outbox
	for range nodes {
		st, err := mailbox.Open(mailbox.Options{Engine: engines.Reopen(t, dsn), GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores = append(stores, st)
		dbs = append(dbs, st.Records())
		outboxes = append(outboxes, newTestOutbox(t, st.Records(), cfg))
	}
	enqueueAll := func(db kv.RecordStore, o *Outbox, ids []string) {
		t.Helper()
		if err := db.Update(func(r kv.Records) error {
			for _, id := range ids {
				if err := o.Enqueue(r, subjectNotice(id)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	pending := func(db kv.RecordStore) int {
		t.Helper()
		var n int
		if err := db.View(func(r kv.Records) error {
			var err error
			n, err = Pending(r)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var ids []string
	for i := range notices {
		ids = append(ids, fmt.Sprintf("n%d", i))
	}
	enqueueAll(dbs[0], outboxes[0], ids)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, o := range outboxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.Run(ctx)
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(sink.Messages()) < notices || pending(dbs[1]) > 0 {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a late double would show now
	cancel()
	wg.Wait()
	counts := sink.Count(t)
	for _, id := range ids {
		if counts[id] != 1 {
			t.Errorf("%s sent %d times, want once", id, counts[id])
		}
	}
	if len(counts) != notices || pending(dbs[2]) != 0 {
		t.Fatalf("%d notices sent, %d pending: want %d and none", len(counts), pending(dbs[2]), notices)
	}

	// Node 0 claims two notices and dies before sending them.
	enqueueAll(dbs[1], outboxes[1], []string{"orphan-1", "orphan-2"})
	claims, err := outboxes[0].claimDue(time.Now())
	if err != nil || len(claims) != 2 {
		t.Fatalf("claim: %v, %d claims", err, len(claims))
	}
	stores[0].Close()
	if sent := deliver(t, outboxes[1], time.Now()); sent != 0 {
		t.Fatalf("node 1 sent %d notices leased by node 0", sent)
	}
	time.Sleep(time.Until(claims[0].until))
	sent := 0
	for i := 0; i < 2; i++ {
		sent += deliver(t, outboxes[1+i], time.Now())
	}
	counts = sink.Count(t)
	if sent != 2 || counts["orphan-1"] != 1 || counts["orphan-2"] != 1 || pending(dbs[2]) != 0 {
		t.Fatalf("after the lease: sent %d, orphan-1 %d times, orphan-2 %d times, %d pending",
			sent, counts["orphan-1"], counts["orphan-2"], pending(dbs[2]))
	}
}
