package mailbox

import (
	"context"
	"sync"
	"testing"
	"time"

	"certmail/kv/pgkv"
)

// TestCatchUpSeesEarlierCommits: after CatchUp on node B returns, B's
// index holds, and B's change feed has announced, every commit node A
// made before the call, though B hears nothing by itself (no
// notifications, a poll an hour). Eight callers at once, each after a
// commit of its own on A, each find theirs: a caller that arrives while a
// read runs waits for the next, which starts after it arrived.
func TestCatchUpSeesEarlierCommits(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	open := func(po pgkv.Options, interval time.Duration) *Store {
		e, err := pgkv.Open(context.Background(), dsn, po)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Engine: e, GCInterval: -1, FollowInterval: interval})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a := open(pgkv.Options{}, 0)
	b := open(pgkv.Options{NoNotify: true}, time.Hour)
	inbox := newAccount(t, a, "d")
	if _, err := b.Messages("d", inbox.ID); err != nil {
		t.Fatal(err)
	}
	feedB := recordFeed(b)
	inIndex := func(uid uint32) bool {
		msgs, err := b.Messages("d", inbox.ID)
		if err != nil {
			t.Error(err)
			return false
		}
		for _, m := range msgs {
			if m.UID == uid {
				return true
			}
		}
		return false
	}
	announced := func(uid uint32) bool {
		for _, c := range feedB.snapshot() {
			if c.Kind == MessageAdded && c.Message.UID == uid {
				return true
			}
		}
		return false
	}

	uid := appendOne(t, a, "d", "INBOX", nil)
	if inIndex(uid) {
		t.Fatal("B has A's message before catching up: the test shows nothing")
	}
	if err := b.CatchUp(); err != nil {
		t.Fatal(err)
	}
	if !inIndex(uid) || !announced(uid) {
		t.Fatalf("after CatchUp, UID %d in B's index: %v, announced: %v", uid, inIndex(uid), announced(uid))
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				var uid uint32
				if err := a.Update(func(tx *Tx) error {
					res, err := tx.Append("d", "INBOX", []byte("Subject: x\r\n\r\nbody\r\n"), AppendOptions{})
					if err == nil {
						uid = res.UID
					}
					return err
				}); err != nil {
					t.Error(err)
					return
				}
				if err := b.CatchUp(); err != nil {
					t.Error(err)
					return
				}
				if !inIndex(uid) || !announced(uid) {
					t.Errorf("after CatchUp, UID %d in B's index: %v, announced: %v", uid, inIndex(uid), announced(uid))
					return
				}
			}
		}()
	}
	wg.Wait()
	sameIndex(t, a, b, "d", "INBOX")
}
