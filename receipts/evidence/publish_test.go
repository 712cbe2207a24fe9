package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"certmail/receipts"

	"certmail/kv"
)

// memDB runs transactions on a store on the suite's engine, counting
// writes.
type memDB struct {
	rs      kv.RecordStore
	mu      sync.Mutex
	updates int
}

func newDB(t testing.TB) *memDB { return &memDB{rs: newStore(t)} }

func (d *memDB) View(fn func(kv.Records) error) error { return d.rs.View(fn) }

func (d *memDB) Update(fn func(kv.Records) error) error {
	d.mu.Lock()
	d.updates++
	d.mu.Unlock()
	return d.rs.Update(fn)
}

func (d *memDB) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.updates
}

func (d *memDB) append(t *testing.T, l *Log, label string) {
	t.Helper()
	if err := d.Update(func(kv kv.Records) error {
		_, err := l.Append(kv, NewSubmissionAcceptance(label, sha256.Sum256([]byte(label)), receipts.CommitmentUnsalted, "a", "b", time.Now().Add(time.Hour)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestPublish(t *testing.T) {
	l := newTestLog(t)
	db := newDB(t)
	cp0, head, err := l.Publish(db)
	if err != nil || head.Size != 0 {
		t.Fatalf("empty log: %v %+v", err, head)
	}
	db.append(t, l, "L-1")
	db.append(t, l, "L-2")
	before := db.count()
	cp2, head, err := l.Publish(db)
	if err != nil || head.Size != 2 || bytes.Equal(cp0, cp2) || db.count() != before+1 {
		t.Fatalf("after two appends: %v %+v, %d updates", err, head, db.count()-before)
	}
	// Nothing new: the stored checkpoint, and no write transaction.
	again, _, err := l.Publish(db)
	if err != nil || !bytes.Equal(again, cp2) || db.count() != before+1 {
		t.Fatalf("unchanged log: %v, %d updates", err, db.count()-before)
	}
	var latest []byte
	db.View(func(r kv.Records) error { latest, _, _ = LatestCheckpoint(r); return nil })
	if !bytes.Equal(latest, cp2) {
		t.Fatal("Publish did not store the checkpoint as the latest")
	}
}

func TestRunCheckpoints(t *testing.T) {
	l := newTestLog(t)
	db := newDB(t)
	db.append(t, l, "L-1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.RunCheckpoints(ctx, db, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	waitSize := func(want uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			var cp []byte
			db.View(func(kv kv.Records) error { cp, _, _ = CheckpointAt(kv, want); return nil })
			if cp != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("no checkpoint of size %d was published", want)
	}
	waitSize(1)
	db.append(t, l, "L-2")
	db.append(t, l, "L-3")
	waitSize(3)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunCheckpoints did not stop with its context")
	}
}
