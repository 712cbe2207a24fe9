package pgkv

import (
	"context"
	"errors"
	"testing"
	"time"

	"certmail/kv"
	"certmail/kv/pgkv/pgtest"
)

// TestListenAgainSoonAfterRestart: a subscriber whose database stops for
// a few seconds listens again within about a second of its coming back
// (the pause between attempts stops growing at maxListenPause), not
// after a pause grown to several seconds meanwhile.
func TestListenAgainSoonAfterRestart(t *testing.T) {
	c := pgtest.Start(t) // a cluster of its own: the test stops it
	e, err := Open(context.Background(), c.DB(t), Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got := make(chan string, 64)
	stop, err := e.Subscribe(func(p string) { got <- p })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	c.Down(t)
	// Long enough for the pauses to grow past a second (50 ms doubling:
	// 1.6 s, then 3.2 s, after 1.55 s of attempts).
	time.Sleep(3 * time.Second)
	c.Up(t)
	up := time.Now()
	for {
		select {
		case p := <-got:
			if p != "" {
				continue
			}
			d := time.Since(up)
			t.Logf("listening again %v after the database came back", d)
			if d > 1500*time.Millisecond {
				t.Errorf("listening again took %v after the database came back; want about a second at most", d)
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatal("not listening again 10 s after the database came back")
		}
	}
}

// TestAbort: after Abort a statement fails at once, and Close returns.
func TestAbort(t *testing.T) {
	e, err := Open(context.Background(), pg.DB(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := e.Begin(false)
	if _, err := tx.Get([]byte("k"), nil); !errors.Is(err, kv.ErrNotFound) {
		t.Fatal(err)
	}
	tx.Discard()
	e.Abort()
	tx, _ = e.Begin(false)
	start := time.Now()
	if _, err := tx.Get([]byte("k"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("a read after Abort: %v, want context.Canceled", err)
	}
	tx.Discard()
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a read after Abort and Close took %v", d)
	}
}
