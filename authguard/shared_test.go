package authguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"certmail/kv/keyspace"
	"certmail/kv/pgkv"
	"certmail/kv/pgkv/pgtest"
	"certmail/mailbox"
)

// pg is the PostgreSQL cluster of the tests of guards on nodes sharing one
// database, started by the first that asks.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// countingStore is a node's store that counts the passwords checked.
type countingStore struct {
	*mailbox.Store
	checks *atomic.Int64
}

func (c countingStore) Authenticate(name, password string) (string, error) {
	c.checks.Add(1)
	return c.Store.Authenticate(name, password)
}

// engines are the last sharedNodes' engines (tests in this file run one
// at a time).
var engines []*pgkv.Engine

// sharedNodes opens n stores on the database of dsn (certmail nodes on
// one PostgreSQL), alice's password "right", and a guard on each that
// keeps its counts in the store, as a node does (node.OpenServices).
func sharedNodes(t *testing.T, dsn string, n int, p Policy) ([]*Guard, []*mailbox.Store, *atomic.Int64) {
	t.Helper()
	checks := &atomic.Int64{}
	var guards []*Guard
	var stores []*mailbox.Store
	engines = nil
	for i := range n {
		e, err := pgkv.Open(context.Background(), dsn, pgkv.Options{Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		st, err := mailbox.Open(mailbox.Options{Engine: e, GCInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			e.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if i == 0 {
			if err := st.CreateAccount("alice", "right", nil); err != nil {
				t.Fatal(err)
			}
		}
		if !st.Shared() {
			t.Fatal("a store on PostgreSQL is not Shared")
		}
		engines = append(engines, e)
		np := p
		np.Shared = st.Records()
		guards = append(guards, New(countingStore{st, checks}, np, slog.New(slog.NewTextHandler(io.Discard, nil))))
		stores = append(stores, st)
	}
	return guards, stores, checks
}

// TestSharedBudgetAcrossNodes: two nodes on one database, guesses at
// alice spread over both (alternating), from addresses that change each
// time: the account's budget holds across the nodes. Exactly MaxFailures
// passwords are checked; then both nodes refuse alice, her right password
// too, without checking it. Before the counts were shared, each node
// allowed MaxFailures: twice the budget.
func TestSharedBudgetAcrossNodes(t *testing.T) {
	guards, _, checks := sharedNodes(t, pg.DB(t), 2, Policy{MaxFailures: 6, FreeFailures: 6, Lockout: time.Hour})
	for i := range 20 {
		g := guards[i%2]
		_, err := g.Authenticate(context.Background(), Attempt{Proto: "test", Remote: fmt.Sprintf("192.0.2.%d:1", i+1), Name: "alice"}, "wrong")
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if n := checks.Load(); n != 6 {
		t.Errorf("%d passwords checked over two nodes; want 6, the budget", n)
	}
	for i, g := range guards {
		_, err := g.Authenticate(context.Background(), Attempt{Proto: "test", Remote: "198.51.100.1:1", Name: "alice"}, "right")
		if retryIn(err) <= 0 {
			t.Errorf("node %d: right password while locked: %v, want a lockout", i, err)
		}
	}
	if n := checks.Load(); n != 6 {
		t.Errorf("%d passwords checked; a locked account's were checked", n)
	}
}

// TestSharedAddressBudget: one address guessing at many accounts over two
// nodes is held to the address's budget across them.
func TestSharedAddressBudget(t *testing.T) {
	guards, _, checks := sharedNodes(t, pg.DB(t), 2, Policy{MaxFailures: 5, FreeFailures: 5, Lockout: time.Hour})
	for i := range 16 {
		g := guards[i%2]
		_, err := g.Authenticate(context.Background(), Attempt{Proto: "test", Remote: "203.0.113.9:1", Name: fmt.Sprintf("user%d", i)}, "wrong")
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if n := checks.Load(); n != 5 {
		t.Errorf("%d passwords checked from one address over two nodes; want 5", n)
	}
}

// TestSharedParallelGuessesBounded: many guesses at once on each of two
// nodes. The nodes do not see each other's attempts in flight, so the
// bound is MaxFailures + 1 (one a node past the budget, shared.go), not
// twice the budget.
func TestSharedParallelGuessesBounded(t *testing.T) {
	const max, nodes = 8, 2
	guards, _, checks := sharedNodes(t, pg.DB(t), nodes, Policy{MaxFailures: max, FreeFailures: 2, Lockout: time.Hour})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			guards[i%nodes].Authenticate(context.Background(), Attempt{Proto: "test", Remote: fmt.Sprintf("192.0.2.%d:1", i+1), Name: "alice"}, "wrong")
		}()
	}
	wg.Wait()
	n := checks.Load()
	t.Logf("%d passwords checked by %d nodes, budget %d", n, nodes, max)
	if n < max || n > max+nodes-1 {
		t.Errorf("%d passwords checked; want %d to %d", n, max, max+nodes-1)
	}
}

// TestSharedSuccessForgives: typos on node A, then the right password on
// node B: the account's failures are forgiven everywhere (B clears the
// record), so more typos on A start from zero; and a correct login with
// nothing on record writes nothing.
func TestSharedSuccessForgives(t *testing.T) {
	guards, stores, checks := sharedNodes(t, pg.DB(t), 2, Policy{MaxFailures: 4, FreeFailures: 4, Lockout: time.Hour})
	a, b := guards[0], guards[1]
	at := Attempt{Proto: "test", Remote: "192.0.2.7:1", Name: "alice"}
	for range 3 {
		if _, err := a.Authenticate(context.Background(), at, "wrong"); !errors.Is(err, ErrFailed) {
			t.Fatal(err)
		}
	}
	if records(t, stores[0]) != 2 {
		t.Fatalf("after failures: %d records, want 2 (account and address)", records(t, stores[0]))
	}
	if _, err := b.Authenticate(context.Background(), at, "right"); err != nil {
		t.Fatalf("right password on B: %v", err)
	}
	if n := records(t, stores[0]); n != 0 {
		t.Errorf("after a login: %d records, want none (the account's and the address's failures forgiven)", n)
	}
	for range 3 {
		a.Authenticate(context.Background(), at, "wrong")
	}
	if _, err := a.Authenticate(context.Background(), at, "right"); err != nil {
		t.Fatalf("right password after 3 more typos: %v (the earlier ones were not forgiven)", err)
	}
	if n := checks.Load(); n != 8 {
		t.Errorf("%d checks, want 8", n)
	}
}

func records(t *testing.T, st *mailbox.Store) int {
	t.Helper()
	var n int
	err := st.View(func(tx *mailbox.Tx) error {
		return tx.Scan([]byte(keyspace.AuthGuard), func(k, v []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSharedFailsClosed: with the database stopped, a login is refused at
// once and no password is checked, the right one included; when it is
// back, the right password works again.
func TestSharedFailsClosed(t *testing.T) {
	c := pgtest.Start(t)
	guards, _, checks := sharedNodes(t, c.DB(t), 1, Policy{MaxFailures: 4, Lockout: time.Hour})
	g := guards[0]
	at := Attempt{Proto: "test", Remote: "192.0.2.7:1", Name: "alice"}
	if _, err := g.Authenticate(context.Background(), at, "right"); err != nil {
		t.Fatal(err)
	}
	c.Down(t)
	before := checks.Load()
	if _, err := g.Authenticate(context.Background(), at, "right"); !errors.Is(err, ErrFailed) {
		t.Errorf("login with the database down: %v, want a refusal", err)
	}
	if checks.Load() != before {
		t.Errorf("a password was checked with the failure counts unreadable")
	}
	c.Up(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := g.Authenticate(context.Background(), at, "right")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login after the database came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSharedSweep: records whose failures are forgotten (older than the
// lockout) are deleted by a later failure's sweep, all of them, in
// batches (here of 2).
func TestSharedSweep(t *testing.T) {
	guards, stores, _ := sharedNodes(t, pg.DB(t), 1, Policy{MaxFailures: 4, Lockout: time.Hour})
	g := guards[0]
	g.sweepBatch = 2
	clk := &clock{t: time.Now()}
	g.now = clk.now
	g.swept = clk.now()
	for i := range 3 {
		g.Authenticate(context.Background(), Attempt{Proto: "test", Remote: fmt.Sprintf("192.0.2.%d:1", i+1), Name: "bob"}, "wrong")
	}
	if n := records(t, stores[0]); n != 4 {
		t.Fatalf("%d records, want 4 (bob, three addresses)", n)
	}
	clk.add(2 * time.Hour)
	g.Authenticate(context.Background(), Attempt{Proto: "test", Remote: "198.51.100.1:1", Name: "carol"}, "wrong")
	if n := records(t, stores[0]); n != 2 {
		t.Errorf("%d records after the sweep, want 2 (carol and her address)", n)
	}
}

// TestSharedCorrectLoginCost: a correct login with no failures on record
// costs the guard one round trip (both records in one GetMany) and no
// write.
func TestSharedCorrectLoginCost(t *testing.T) {
	guards, stores, _ := sharedNodes(t, pg.DB(t), 1, Policy{MaxFailures: 4, Lockout: time.Hour})
	g, st, e := guards[0], stores[0], engines[0]
	at := Attempt{Proto: "test", Remote: "192.0.2.7:1", Name: "alice"}
	const n = 300
	measure := func(login func() error) (rt float64, d time.Duration) {
		login() // the password's hash cached, connections open
		r0, t0 := e.Stats().RoundTrips, time.Now()
		for range n {
			if err := login(); err != nil {
				t.Fatal(err)
			}
		}
		return float64(e.Stats().RoundTrips-r0) / n, time.Since(t0) / n
	}
	bareRT, bare := measure(func() error { _, err := st.Authenticate("alice", "right"); return err })
	guardRT, guarded := measure(func() error { _, err := g.Authenticate(context.Background(), at, "right"); return err })
	t.Logf("a correct login: store alone %.2f round trips, %v; through the shared guard %.2f, %v", bareRT, bare, guardRT, guarded)
	if guardRT-bareRT > 1.5 {
		t.Errorf("the guard added %.2f round trips to a correct login; want one", guardRT-bareRT)
	}
	if n := records(t, st); n != 0 {
		t.Errorf("correct logins wrote %d records", n)
	}
}
