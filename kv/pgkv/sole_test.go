package pgkv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"certmail/kv"
)

// openSole opens an engine on dsn that takes the sole-writer lease after
// 100 ms without another writer, and listens (a lease is held only by a
// listening engine, which hears writers ask for it).
func openSole(t *testing.T, dsn string) *Engine {
	t.Helper()
	e, err := Open(context.Background(), dsn, Options{SoleQuiet: 100 * time.Millisecond, SoleTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := e.Subscribe(func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.StartSole(ctx, []byte("f/"))
	t.Cleanup(func() { cancel(); stop(); e.Close() })
	return e
}

// waitSole waits until e holds the lease.
func waitSole(t *testing.T, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !e.Sole(time.Now()) {
		if time.Now().After(deadline) {
			t.Fatal("the engine never took the sole-writer lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSoleLease: while an engine holds the lease no other engine's write
// commits; a write by another asks it to let go and commits a moment
// later, and by then the holder no longer counts on the lease for any
// read begun before that write. Rounds of: the holder reads (its
// catch-up), another engine writes, the holder must not count on that
// read; then the holder takes the lease again.
func TestSoleLease(t *testing.T) {
	dsn := pg.DB(t)
	holder := openSole(t, dsn)
	other, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for round := range 5 {
		waitSole(t, holder)
		read := time.Now() // the holder's last read began
		start := time.Now()
		if err := kv.Update(other, func(tx kv.Txn) error {
			return tx.Set(fmt.Appendf(nil, "f/%d", round), []byte("v"))
		}); err != nil {
			t.Fatalf("round %d: the other engine's write: %v", round, err)
		}
		took := time.Since(start)
		if holder.Sole(read) {
			t.Fatalf("round %d: another engine committed, and the holder still counts on its read from before", round)
		}
		if took > 2*time.Second {
			t.Errorf("round %d: the other engine's write waited %v for the lease", round, took)
		}
		t.Logf("round %d: a write beside the holder took %v", round, took)
	}
}

// TestSoleLeaseExpires: a holder that vanishes without letting go
// (Abort: its connections are cut, nothing more is sent) holds other
// writers up until the lease expires (SoleTTL), not longer.
func TestSoleLeaseExpires(t *testing.T) {
	dsn := pg.DB(t)
	holder := openSole(t, dsn)
	waitSole(t, holder)
	holder.Abort()
	other, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	start := time.Now()
	if err := kv.Update(other, func(tx kv.Txn) error { return tx.Set([]byte("f/x"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a write after the holder vanished waited %v (the lease lasts 1 s)", took)
	}
}

// TestSoleLeaseNotTakenBesideWriter: an engine that keeps hearing another
// engine's commits never takes the lease.
func TestSoleLeaseNotTakenBesideWriter(t *testing.T) {
	dsn := pg.DB(t)
	e := openSole(t, dsn)
	other, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	deadline := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if err := kv.Update(other, func(tx kv.Txn) error {
			if err := other.Notify(tx, "other"); err != nil {
				return err
			}
			return tx.Set(fmt.Appendf(nil, "f/%d", i), []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
		if e.Sole(time.Time{}.Add(1)) || e.sole.held() {
			t.Fatal("took the lease while another engine wrote every 20 ms")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSoleLeaseRace: another engine writes with pauses around the quiet
// time, so that the holder takes the lease, and lets it go, again and
// again, some takes racing a write; meanwhile the holder's reads are
// checked: whenever it counts on the lease for a read begun at r, no
// write may have returned after r.
func TestSoleLeaseRace(t *testing.T) {
	dsn := pg.DB(t)
	holder := openSole(t, dsn)
	other, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var mu sync.Mutex
	var commits []time.Time // when each write returned
	done := make(chan struct{})
	go func() {
		defer close(done)
		end := time.Now().Add(3 * time.Second)
		for i := 0; time.Now().Before(end); i++ {
			time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
			if err := kv.Update(other, func(tx kv.Txn) error {
				return tx.Set(fmt.Appendf(nil, "f/%d", i), []byte("v"))
			}); err != nil {
				t.Error(err)
				return
			}
			now := time.Now()
			mu.Lock()
			commits = append(commits, now)
			mu.Unlock()
		}
	}()
	var held, checks int
	for {
		select {
		case <-done:
			t.Logf("%d checks, %d of them while the holder counted on its lease; %d writes", checks, held, len(commits))
			if held == 0 {
				t.Error("the holder never held the lease")
			}
			return
		default:
		}
		r := time.Now()
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		x := time.Now() // a write that returned before x committed before Sole's answer
		sole := holder.Sole(r)
		checks++
		if !sole {
			continue
		}
		held++
		mu.Lock()
		for _, c := range commits {
			if c.After(r) && c.Before(x) {
				t.Errorf("a write returned at %v, after a read begun at %v that the holder still counted on after %v", c, r, x)
			}
		}
		mu.Unlock()
	}
}
