package mailbox

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"certmail/kv/pgkv"
)

// TestCurrentMailboxAcrossNodes: node B answers a mailbox's record and
// HIGHESTMODSEQ from memory once it has them (reccache.go), and after
// CatchUp they are what the database holds, whatever node A changed in
// between: UIDNEXT (an append), the \Recent claim, the subscription, the
// name (a rename), the mailbox itself (deleted and made again: a new ID
// and UIDVALIDITY), HIGHESTMODSEQ (flags, an expunge). B's own commits
// are in force at once, with no catch-up. A record B holds costs no round
// trip; SELECT is then the catch-up alone.
func TestCurrentMailboxAcrossNodes(t *testing.T) {
	nodes := openNodes(t, 2, Options{})
	a, b := nodes[0], nodes[1]
	newAccount(t, a, "c")
	if err := a.Update(func(tx *Tx) error {
		_, err := tx.CreateMailbox("c", NewMailbox{Name: "Work"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	be := b.db.(*pgkv.Engine)

	// check compares what B answers from memory with what it reads.
	check := func(step, name string) {
		t.Helper()
		if err := b.CatchUp(); err != nil {
			t.Fatalf("%s: CatchUp: %v", step, err)
		}
		got, gotErr := b.CurrentMailbox("c", name)
		want, wantErr := b.Mailbox("c", name)
		if !errors.Is(gotErr, ErrNoMailbox) || !errors.Is(wantErr, ErrNoMailbox) {
			if gotErr != nil || wantErr != nil {
				t.Fatalf("%s: %q: CurrentMailbox: %v, Mailbox: %v", step, name, gotErr, wantErr)
			}
		}
		if want == nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %q: B answers\n%+v\nthe database holds\n%+v", step, name, got, want)
		}
		// Watch: the record and HIGHESTMODSEQ a SELECT reports.
		var wmb *MailboxInfo
		var facts BoxFacts
		if err := b.Watch("c", want.ID, name, func(mb *MailboxInfo, _ []*Message, f BoxFacts) { wmb, facts = mb, f }); err != nil {
			t.Fatalf("%s: Watch: %v", step, err)
		}
		var ms ModSeqInfo
		if err := b.View(func(tx *Tx) error {
			var err error
			ms, err = tx.ModSeq("c", want.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(wmb, want) || facts.HighestModSeq != ms.HighestModSeq {
			t.Fatalf("%s: %q: Watch gives %+v at HIGHESTMODSEQ %d; the database holds %+v at %d",
				step, name, wmb, facts.HighestModSeq, want, ms.HighestModSeq)
		}
		// Now held: answered without a round trip. The engine's
		// counter is the node's: a poll A's wake-up started may land
		// in the window, so the fewest of a few tries counts.
		var fewest uint64
		for try := range 5 {
			before := be.Stats().RoundTrips
			if _, err := b.CurrentMailbox("c", name); err != nil {
				t.Fatal(err)
			}
			if err := b.Watch("c", want.ID, name, func(*MailboxInfo, []*Message, BoxFacts) {}); err != nil {
				t.Fatal(err)
			}
			if n := be.Stats().RoundTrips - before; try == 0 || n < fewest {
				fewest = n
			}
		}
		if fewest != 0 {
			t.Errorf("%s: a held record and HIGHESTMODSEQ cost %d round trips", step, fewest)
		}
	}
	check("start", "INBOX")
	check("start", "Work")

	uid := appendOne(t, a, "c", "INBOX", nil)
	check("append on A", "INBOX")

	inbox, err := a.Mailbox("c", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(func(tx *Tx) error {
		_, _, err := tx.ClaimRecent("c", inbox.ID, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	check(`\Recent claimed on A`, "INBOX")

	if err := a.Update(func(tx *Tx) error { return tx.SetSubscribed("c", "Work", true) }); err != nil {
		t.Fatal(err)
	}
	check("subscribed on A", "Work")

	if err := a.Update(func(tx *Tx) error {
		_, err := tx.SetFlags("c", inbox.ID, []uint32{uid}, FlagsAdd, []string{FlagSeen})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	check("flags on A", "INBOX")

	if err := a.Update(func(tx *Tx) error { return tx.RenameMailbox("c", "Work", "Play") }); err != nil {
		t.Fatal(err)
	}
	check("renamed on A", "Work")
	check("renamed on A", "Play")

	old, err := a.Mailbox("c", "Play")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteMailbox("c", "Play"); err != nil {
		t.Fatal(err)
	}
	check("deleted on A", "Play")
	if err := a.Update(func(tx *Tx) error {
		_, err := tx.CreateMailbox("c", NewMailbox{Name: "Play"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	check("made again on A", "Play")
	if mb, _ := b.CurrentMailbox("c", "Play"); mb.ID == old.ID || mb.UIDValidity == old.UIDValidity {
		t.Errorf("the new Play has ID %d and UIDVALIDITY %d, as the old one", mb.ID, mb.UIDValidity)
	}

	if err := a.Update(func(tx *Tx) error {
		if _, err := tx.SetFlags("c", inbox.ID, []uint32{uid}, FlagsAdd, []string{FlagDeleted}); err != nil {
			return err
		}
		_, err := tx.Expunge("c", inbox.ID, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	check("expunged on A", "INBOX")

	// B's own commit: in force with no catch-up.
	appendOne(t, b, "c", "INBOX", nil)
	got, err := b.CurrentMailbox("c", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := b.Mailbox("c", "INBOX"); !reflect.DeepEqual(got, want) {
		t.Errorf("after B's own append B answers %+v; the database holds %+v", got, want)
	}
}

// TestCatchUpReadsNewBulletinsOnly: a catch-up on a node whose mailboxes
// are quiet reads none of the bulletins it has handled. It read the
// newest window of them again each time (a burst of 50 deliveries: 51
// rows in two round trips a catch-up, half the time of a SELECT).
func TestCatchUpReadsNewBulletinsOnly(t *testing.T) {
	nodes := openNodes(t, 2, Options{})
	a, b := nodes[0], nodes[1]
	newAccount(t, a, "c")
	for range 60 {
		appendOne(t, a, "c", "INBOX", nil)
	}
	// Past the window a catch-up reads again behind the last read
	// (followWakeLookback: what committed late).
	time.Sleep(2 * followWakeLookback)
	if err := b.CatchUp(); err != nil {
		t.Fatal(err)
	}
	be := b.db.(*pgkv.Engine)
	// The fewest of three rounds: the node's own periodic poll may fall
	// in one.
	var trips, bytes float64
	for round := range 3 {
		before := be.Stats()
		const n = 10
		for range n {
			if err := b.CatchUp(); err != nil {
				t.Fatal(err)
			}
		}
		after := be.Stats()
		rt, by := float64(after.RoundTrips-before.RoundTrips)/n, float64(after.BytesReceived-before.BytesReceived)/n
		if round == 0 || rt < trips {
			trips, bytes = rt, by
		}
	}
	t.Logf("a catch-up after 60 bulletins read: %.1f round trips, %.0f bytes received", trips, bytes)
	// An empty scan's answer, with the COMMIT and BEGIN before it, is
	// about 370 bytes; a bulletin of an append about 70.
	if trips > 1 || bytes > 1000 {
		t.Errorf("a catch-up on a quiet node cost %.1f round trips and %.0f bytes", trips, bytes)
	}
}

// TestCatchUpAfterBurst: a catch-up whose window holds a burst of
// another node's commits (100 appends, as many bulletins) reads the
// journal in one round trip; from 32 rows up it took two or three (pages of 32, 128,
// ...). B hears of A's commits only through its catch-ups here (no
// wake-ups, no periodic poll), so that nothing else reads them first.
func TestCatchUpAfterBurst(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	a, err := Open(Options{Engine: engines.Reopen(t, dsn), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	be, err := pgkv.Open(context.Background(), dsn, pgkv.Options{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(Options{Engine: be, GCInterval: -1, FollowInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	newAccount(t, a, "c")
	if err := b.CatchUp(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		appendOne(t, a, "c", "INBOX", nil)
	}
	// The journal read alone: a catch-up then reads the records of what
	// it found, for its announcements.
	b.wmu.Lock()
	defer b.wmu.Unlock()
	var found int
	before := be.Stats().RoundTrips
	err = b.View(func(tx *Tx) error {
		entries, err := b.follow.readJournal(tx, true, followWakeLookback)
		found = len(entries)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := be.Stats().RoundTrips - before; n != 1 || found < 100 {
		t.Errorf("a catch-up's journal read after a burst of 100 appends on another node took %d round trips and found %d bulletins, want 1 and 100", n, found)
	}
}
