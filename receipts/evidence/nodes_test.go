package evidence

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"certmail/kv"
	"certmail/mailbox"
	"certmail/receipts"
)

// TestNodesAppendOneLog (issue 13): three nodes on one PostgreSQL
// database, each with its own Log (the same gateway key, as every node of
// one deployment has), append evidence at once, to items of their own and
// to items they share, and publish checkpoints as they go. What is left
// is one log: every leaf from 0 to its size present once, each record in
// exactly one item's chain, each chain in seq order with its prev links,
// the head's root the root of those leaves, every stored checkpoint signed
// for the tree of its size and consistent with every earlier one (RFC 9162
// consistency proofs, checked with transparency-dev/merkle), and every
// item's bundle accepted by Verify with the gateway key pinned.
func TestNodesAppendOneLog(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	const nodes, perNode, shared = 3, 100, 10
	signer, err := NewSigner(testGateway, testKey("gateway"))
	if err != nil {
		t.Fatal(err)
	}
	var dbs []kv.RecordStore
	var logs []*Log
	for range nodes {
		st, err := mailbox.Open(mailbox.Options{Engine: engines.Reopen(t, dsn), GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		l, err := NewLog(signer, testOrigin)
		if err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, st.Records())
		logs = append(logs, l)
	}
	deadline := time.Now().Add(7 * 24 * time.Hour)
	hashOf := func(label string) [32]byte { return receipts.ItemHash(label, []byte("M of "+label)) }
	post := func(label string) Event {
		return NewSubmissionAcceptance(label, hashOf(label), receipts.CommitmentUnsalted, "alice@example.com", "bob", deadline)
	}
	// want counts the records each item must end with.
	want := map[string]int{}
	for i := range shared {
		label := fmt.Sprintf("S%d", i)
		if err := dbs[0].Update(func(r kv.Records) error {
			_, err := logs[0].Append(r, post(label))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		want[label] = 1
	}
	// Each node's plan: every tenth append posts an item of its own,
	// which its later appends notify; the rest notify the shared items.
	type step struct {
		label string
		ev    Event
	}
	plans := make([][]step, nodes)
	for n := range nodes {
		own := ""
		for k := range perNode {
			var s step
			switch {
			case k%10 == 0:
				own = fmt.Sprintf("N%d-%d", n, k)
				s = step{own, post(own)}
			case k%3 == 0:
				s = step{own, NewConsignmentNotification(own, hashOf(own), "bob")}
			default:
				label := fmt.Sprintf("S%d", (k+n)%shared)
				s = step{label, NewConsignmentNotification(label, hashOf(label), "bob")}
			}
			plans[n] = append(plans[n], s)
			want[s.label]++
		}
	}
	// The nodes append as fast as they can, all to one log: every append
	// writes the log head, so all but one of those running at once
	// conflict, and the store runs them again, for 5 s at least
	// (mailbox.Store.UpdateFrom). On a loaded machine (a load of 15 on two
	// cores) a node could lose for longer than that, and its append
	// failed with kv.ErrConflict, as a delivery would: its sender tries
	// again later. So does this test, within a bound; the log must end
	// the same.
	giveUp := time.Now().Add(2 * time.Minute)
	var gaveUp atomic.Int64
	patiently := func(f func() error) error {
		for {
			err := f()
			if !errors.Is(err, kv.ErrConflict) || time.Now().After(giveUp) {
				return err
			}
			gaveUp.Add(1)
		}
	}
	// The nodes go in step, ten appends at a time: on a quiet machine one
	// node's appends could win every conflict on the head and run through
	// before the others got one in (optimistic concurrency is not fair),
	// and then no two nodes' appends interleaved. Within a step they race.
	steps := make([]sync.WaitGroup, perNode/10)
	for i := range steps {
		steps[i].Add(nodes)
	}
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	for n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			passed := 0    // steps this node is through
			defer func() { // a node that failed holds no other up
				for ; passed < len(steps); passed++ {
					steps[passed].Done()
				}
			}()
			for k, s := range plans[n] {
				if k > 0 && k%10 == 0 {
					steps[passed].Done()
					steps[passed].Wait()
					passed++
				}
				if err := patiently(func() error {
					return dbs[n].Update(func(r kv.Records) error {
						_, err := logs[n].Append(r, s.ev)
						return err
					})
				}); err != nil {
					errs <- fmt.Errorf("node %d append %d (%s): %w", n, k, s.label, err)
					return
				}
				if k%7 == 0 {
					if err := patiently(func() error { _, _, err := logs[n].Publish(dbs[n]); return err }); err != nil {
						errs <- fmt.Errorf("node %d publish after %d: %w", n, k, err)
						return
					}
				}
			}
			if err := patiently(func() error { _, _, err := logs[n].Publish(dbs[n]); return err }); err != nil {
				errs <- fmt.Errorf("node %d final publish: %w", n, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if n := gaveUp.Load(); n > 0 {
		t.Logf("the store gave up on %d conflicting transactions; run again", n)
	}
	for err := range errs {
		t.Fatal(err)
	}

	total := uint64(shared + nodes*perNode)
	// Every node reads the same log.
	for n := range nodes {
		if err := dbs[n].View(func(r kv.Records) error {
			checkOneLog(t, r, logs[n], total, want)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The nodes did append at once: their own items' records interleave
	// in the log (a run where one node finished before the next began
	// would prove nothing).
	if err := dbs[0].View(func(r kv.Records) error {
		first, last := make([]uint64, nodes), make([]uint64, nodes)
		for n := range nodes {
			first[n] = ^uint64(0)
			for k := 0; k < perNode; k += 10 {
				indexes, err := labelIndexes(r, fmt.Sprintf("N%d-%d", n, k))
				if err != nil {
					return err
				}
				first[n], last[n] = min(first[n], indexes[0]), max(last[n], indexes[len(indexes)-1])
			}
		}
		for a := range nodes {
			for b := range nodes {
				if a != b && first[a] < last[b] && first[b] < last[a] {
					return nil
				}
			}
		}
		return fmt.Errorf("no two nodes' appends interleave: first leaves %v, last %v", first, last)
	}); err != nil {
		t.Fatal(err)
	}
	// Every item's evidence verifies, with the gateway key pinned.
	for label, count := range want {
		var b *Bundle
		if err := dbs[1].Update(func(r kv.Records) error {
			var err error
			b, err = logs[1].BuildBundle(r, label, partyKey(t, "bob"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		v, err := Verify(b, VerifyOptions{GatewayKey: signer.Public(), RequireComplete: true, RequirePinnedKey: true,
			Message: bytes.NewReader([]byte("M of " + label))})
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		if len(b.Records) != count || !v.Complete {
			t.Errorf("%s: bundle of %d records (complete %v), want %d", label, len(b.Records), v.Complete, count)
		}
	}
}

// checkOneLog checks that r holds one log of size records: every leaf
// once, in exactly one chain, the chains' lengths as in want, the root
// that of the leaves, and the checkpoints mutually consistent.
func checkOneLog(t *testing.T, r kv.Records, l *Log, size uint64, want map[string]int) {
	t.Helper()
	got, root, err := Root(r)
	if err != nil {
		t.Fatal(err)
	}
	if got != size {
		t.Fatalf("log size %d, want %d", got, size)
	}
	// No gap: every leaf below the size is there, and nothing above it.
	leaves := 0
	if err := r.Scan([]byte(prefixLeaf), func(k, _ []byte) error {
		leaves++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if uint64(leaves) != size {
		t.Fatalf("%d leaves stored, the head says %d", leaves, size)
	}
	// No fork: each leaf belongs to exactly one label's chain, and each
	// chain replays (seq in order, prev links, the item's rules).
	owner := make([]string, size)
	for label, n := range want {
		indexes, err := labelIndexes(r, label)
		if err != nil {
			t.Fatal(err)
		}
		if len(indexes) != n {
			t.Errorf("%s: %d records, want %d", label, len(indexes), n)
		}
		if _, err := replay(r, indexes); err != nil {
			t.Errorf("%s: %v", label, err)
		}
		for _, i := range indexes {
			if i >= size {
				t.Fatalf("%s: leaf %d beyond the size %d", label, i, size)
			}
			if owner[i] != "" {
				t.Errorf("leaf %d is in both %s and %s", i, owner[i], label)
			}
			owner[i] = label
		}
	}
	for i, o := range owner {
		if o == "" {
			t.Errorf("leaf %d is in no item's chain", i)
		}
	}
	// The head's root is the root of the leaves as stored.
	hashes, err := LeafHashes(r, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := rangeFactory.NewEmptyRange(0)
	for _, h := range hashes {
		if err := rebuilt.Append(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	if rr, err := rebuilt.GetRootHash(nil); err != nil || !bytes.Equal(rr, root) {
		t.Fatalf("root of the leaves %x (%v), the head says %x", rr, err, root)
	}
	// Checkpoints: each signed, for the tree of its size, and consistent
	// with every earlier one.
	var heads []TreeHead
	if err := r.Scan([]byte(prefixCheckpoint), func(k, v []byte) error {
		th, err := ParseCheckpoint(v, l.VerifierKey())
		if err != nil {
			return fmt.Errorf("checkpoint %x: %w", k, err)
		}
		heads = append(heads, th)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(heads, func(i, j int) bool { return heads[i].Size < heads[j].Size })
	if len(heads) < 2 || heads[len(heads)-1].Size != size {
		t.Fatalf("%d checkpoints, the newest of size %d: want several, the newest of size %d",
			len(heads), heads[len(heads)-1].Size, size)
	}
	latest, _, err := LatestCheckpoint(r)
	if err != nil {
		t.Fatal(err)
	}
	if th, err := ParseCheckpoint(latest, l.VerifierKey()); err != nil || th.Size != size {
		t.Errorf("latest checkpoint of size %d (%v), want %d", th.Size, err, size)
	}
	for i, a := range heads {
		if rootA, err := RootAt(r, a.Size); err != nil || !bytes.Equal(rootA, a.Root) {
			t.Errorf("checkpoint of size %d signs root %x, the tree had %x (%v)", a.Size, a.Root, rootA, err)
		}
		for _, b := range heads[i+1:] {
			p, err := ConsistencyProof(r, a.Size, b.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(hasher, a.Size, b.Size, p, a.Root, b.Root); err != nil {
				t.Errorf("checkpoints %d and %d: %v", a.Size, b.Size, err)
			}
		}
	}
}

// readCounter is kv.Records that counts the reads (Get, GetMany, Scan)
// made through it: each is a round trip on PostgreSQL.
type readCounter struct {
	kv.Records
	reads int
}

func (c *readCounter) Get(key []byte) ([]byte, bool, error) {
	c.reads++
	return c.Records.Get(key)
}

func (c *readCounter) GetMany(keys [][]byte, fn func(i int, value []byte) error) error {
	c.reads++
	return c.Records.GetMany(keys, fn)
}

func (c *readCounter) Scan(prefix []byte, fn func(key, value []byte) error) error {
	c.reads++
	return c.Records.Scan(prefix, fn)
}

// TestAppendReadsInFourRoundTrips: an append reads the item's label
// index, its records, the log head and the compact range: four reads,
// however long the item's chain and whatever the log's size. It runs in
// the write transaction that every other append conflicts with, so each
// round trip more is a wider window for losing (TestNodesAppendOneLog);
// with a Get per record and per tree node, the 31st record of an item in
// a log of 255 leaves made 40 reads.
func TestAppendReadsInFourRoundTrips(t *testing.T) {
	l := newTestLog(t)
	rs := newStore(t)
	deadline := time.Date(2025, 3, 8, 9, 0, 0, 0, time.UTC)
	h := [32]byte{9}
	events := []Event{NewSubmissionAcceptance("L", h, receipts.CommitmentUnsalted, "", "bob", deadline)}
	for range 29 {
		events = append(events, NewConsignmentNotification("L", h, "bob"))
	}
	if err := rs.Update(func(r kv.Records) error {
		for i := range 225 { // 255 leaves in all: eight complete subtrees
			label := fmt.Sprintf("F%d", i)
			if _, err := l.Append(r, NewSubmissionAcceptance(label, h, receipts.CommitmentUnsalted, "", "bob", deadline)); err != nil {
				return err
			}
		}
		for _, ev := range events {
			if _, err := l.Append(r, ev); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := rs.Update(func(r kv.Records) error {
		c := &readCounter{Records: r}
		if _, err := l.Append(c, NewConsignmentNotification("L", h, "bob")); err != nil {
			return err
		}
		if c.reads != 4 {
			t.Errorf("appending the 31st record of an item to a log of 255: %d reads, want 4", c.reads)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
