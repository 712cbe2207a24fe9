package mailbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"certmail/kv/pgkv"
)

// openGroupStore opens a store on a fresh PostgreSQL database, with its
// engine for the round-trip counters.
func openGroupStore(t *testing.T) (*Store, *pgkv.Engine) {
	t.Helper()
	e, err := pgkv.Open(context.Background(), engines.PostgresDSN(t), pgkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Following no one: the counters count only the updates.
	s, err := Open(Options{Engine: e, GCInterval: -1, FollowInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, e
}

// queued waits until n grouped updates wait behind the one running.
func (g *groupCommit) waitQueued(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		q := len(g.queue)
		g.mu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d grouped updates queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdFirst is the first run of an update that tells it started and
// then waits for release; runs again (a conflict) pass.
func holdFirst(started, release chan struct{}) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			close(started)
			<-release
		})
	}
}

// groupedAppend is a delivery's update: one message to acct's INBOX.
func groupedAppend(s *Store, acct string, raw []byte, before func()) error {
	return s.UpdateGrouped(int64(len(raw)), []AppendTarget{{acct, "INBOX"}}, func(tx *Tx) error {
		if before != nil {
			before()
		}
		_, err := tx.Append(acct, "INBOX", raw, AppendOptions{})
		return err
	})
}

// TestUpdateGroupedShares: updates that arrive while one runs share one
// transaction (one commit for the lot, reading ahead for all of them in
// two round trips), each sees the ones before it (consecutive UIDs in one
// mailbox), and every one is there after.
func TestUpdateGroupedShares(t *testing.T) {
	s, e := openGroupStore(t)
	for _, a := range []string{"g1", "g2"} {
		newAccount(t, s, a)
	}
	// The first message takes the store's lease of blob IDs.
	if err := groupedAppend(s, "g2", []byte("Subject: lease\r\n\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	const waiting = 10
	release, started := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	// The first update holds the lead until the others are queued.
	go func() {
		first <- groupedAppend(s, "g1", []byte("Subject: first\r\n\r\nfirst\r\n"), holdFirst(started, release))
	}()
	<-started
	before := e.Stats()
	var wg sync.WaitGroup
	errs := make([]error, waiting)
	for i := range waiting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct := []string{"g1", "g2"}[i%2]
			errs[i] = groupedAppend(s, acct, fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i, i), nil)
		}()
	}
	s.group.waitQueued(t, waiting)
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	after := e.Stats()
	// The first alone, then the ten together.
	if got := after.Transactions - before.Transactions; got > 2 {
		t.Errorf("%d transactions for %d updates, want the waiting ones in one", got, waiting+1)
	}
	// The group: reading ahead (two), its commit (one), and following
	// (a few); each update's own reads would be twenty more.
	rt := after.RoundTrips - before.RoundTrips
	t.Logf("%d updates: %d transactions, %d round trips", waiting+1, after.Transactions-before.Transactions, rt)
	if rt > 7 {
		t.Errorf("%d round trips for the group, want the reads done ahead for all", rt)
	}
	for acct, want := range map[string]int{"g1": 1 + waiting/2, "g2": 1 + waiting/2} {
		mb, err := s.Mailbox(acct, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := s.Messages(acct, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != want {
			t.Fatalf("%s: %d messages, want %d", acct, len(msgs), want)
		}
		for i, m := range msgs {
			if m.UID != uint32(i+1) {
				t.Fatalf("%s: UIDs %v..., want 1 to %d", acct, m.UID, want)
			}
		}
		if mb.UIDNext != uint32(want+1) {
			t.Fatalf("%s: UIDNEXT %d, want %d", acct, mb.UIDNext, want+1)
		}
	}
}

// TestUpdateGroupedFailureIsolated: one update of a group fails; the
// group is rolled back and each update runs again alone, so the others
// commit and the failing one gets its own error and leaves nothing.
func TestUpdateGroupedFailureIsolated(t *testing.T) {
	s, _ := openGroupStore(t)
	newAccount(t, s, "f1")
	release, started := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- groupedAppend(s, "f1", []byte("Subject: a\r\n\r\na\r\n"), holdFirst(started, release))
	}()
	<-started
	bad := errors.New("this update fails")
	results := make(chan error, 3)
	go func() { results <- groupedAppend(s, "f1", []byte("Subject: b\r\n\r\nb\r\n"), nil) }()
	s.group.waitQueued(t, 1)
	go func() {
		results <- s.UpdateGrouped(10, []AppendTarget{{"f1", "INBOX"}}, func(tx *Tx) error {
			if _, err := tx.Append("f1", "INBOX", []byte("Subject: bad\r\n\r\nbad\r\n"), AppendOptions{}); err != nil {
				return err
			}
			return bad
		})
	}()
	s.group.waitQueued(t, 2)
	go func() { results <- groupedAppend(s, "nobody", []byte("Subject: c\r\n\r\nc\r\n"), nil) }()
	s.group.waitQueued(t, 3)
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var ok, failed, noAccount int
	for range 3 {
		switch err := <-results; {
		case err == nil:
			ok++
		case errors.Is(err, bad):
			failed++
		case err != nil:
			noAccount++
		}
	}
	if ok != 1 || failed != 1 || noAccount != 1 {
		t.Fatalf("%d succeeded, %d failed with their own error, %d for another reason; want 1 each", ok, failed, noAccount)
	}
	mb, err := s.Mailbox("f1", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Messages("f1", mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages in INBOX, want the first and b", len(msgs))
	}
}

// TestUpdateGroupedOnBadger: a store that is its engine's only writer
// does not group: each update is an Update of its own.
func TestUpdateGroupedOnBadger(t *testing.T) {
	s := openTestStore(t)
	newAccount(t, s, "b1")
	if err := groupedAppend(s, "b1", []byte("Subject: x\r\n\r\nx\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	if s.group.running || len(s.group.queue) != 0 {
		t.Fatal("a Badger store queued a grouped update")
	}
}

// TestUpdateGroupedPanic: an update that panics in a group fails the
// others sharing its transaction with an error (nothing of the group is
// committed) and leaves the queue working.
func TestUpdateGroupedPanic(t *testing.T) {
	s, _ := openGroupStore(t)
	newAccount(t, s, "p1")
	release, started := make(chan struct{}), make(chan struct{})
	leader := make(chan any, 1)
	go func() {
		defer func() { leader <- recover() }()
		s.UpdateGrouped(10, nil, func(tx *Tx) error {
			holdFirst(started, release)()
			panic("boom")
		})
	}()
	<-started
	other := make(chan error, 1)
	go func() { other <- groupedAppend(s, "p1", []byte("Subject: o\r\n\r\no\r\n"), nil) }()
	s.group.waitQueued(t, 1)
	close(release)
	if r := <-leader; r != "boom" {
		t.Fatalf("the leader's panic: %v", r)
	}
	select {
	case err := <-other:
		// It ran alone (its own commit) or shared the failed group.
		_ = err
	case <-time.After(10 * time.Second):
		t.Fatal("the other update still waits after the leader panicked")
	}
	if err := groupedAppend(s, "p1", []byte("Subject: after\r\n\r\nafter\r\n"), nil); err != nil {
		t.Fatalf("an update after the panic: %v", err)
	}
}
