package mailbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"certmail/kv"
	"certmail/kv/keyspace"
)

// TestLoadMark: a load claims only an empty store, marks it until
// EndLoad, and a second claim finds the mark; DiscardLoad deletes every
// pair in batches, those sorting before the mark and after it, the mark
// last, and refuses a store without one; discardIncomplete empties a
// marked store and claims it again, never one without a mark.
func TestLoadMark(t *testing.T) {
	s := openAt(t, Options{Dir: filepath.Join(t.TempDir(), "s"), GCInterval: -1, Brief: true})
	defer s.Close()
	e := s.Engine()
	if empty, err := kv.IsEmpty(e); err != nil || !empty {
		t.Fatalf("a new store: empty %v, %v", empty, err)
	}
	mark := NewLoadMark("restore", "night.bak")
	if err := BeginLoad(e, mark, false); err != nil {
		t.Fatal(err)
	}
	var ie *IncompleteError
	if err := BeginLoad(e, NewLoadMark("migrate", "other"), false); !errors.As(err, &ie) || ie.Mark.Source != "night.bak" || ie.Mark.PID != mark.PID {
		t.Fatalf("a second claim: %v", err)
	}
	// 2,500 pairs on each side of the mark (seq/loading): several
	// batches each.
	for i := range 5 {
		if err := kv.Update(e, func(tx kv.Txn) error {
			for j := range 1000 {
				k := fmt.Sprintf("%s%06d", keyspace.Account, i*1000+j)
				if i >= 2 {
					k = fmt.Sprintf("%s%s%06d", keyspace.Aux, keyspace.Certified, i*1000+j)
				}
				if err := tx.Set([]byte(k), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckComplete(e); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("CheckComplete on a marked store: %v", err)
	}
	n, err := DiscardLoad(e)
	if err != nil || n != 5000 {
		t.Fatalf("discarded %d pairs: %v", n, err)
	}
	if empty, err := kv.IsEmpty(e); err != nil || !empty {
		t.Fatalf("after DiscardLoad: empty %v, %v", empty, err)
	}
	if _, err := DiscardLoad(e); err == nil {
		t.Fatal("DiscardLoad of a store without a mark")
	}

	// A store with a pair and no mark: not claimed, even to discard.
	if err := kv.Update(e, func(tx kv.Txn) error { return tx.Set([]byte(keyspace.Account+"alice"), []byte("{}")) }); err != nil {
		t.Fatal(err)
	}
	for _, discard := range []bool{false, true} {
		if err := BeginLoad(e, mark, discard); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("a claim of a store (discard %v): %v", discard, err)
		}
	}
	if err := CheckComplete(e); err != nil {
		t.Fatalf("a refused claim left a mark: %v", err)
	}
	if _, err := DiscardLoad(e); err == nil {
		t.Fatal("DiscardLoad of a store")
	}

	// Marked with a pair: discardIncomplete empties it and claims it.
	if err := kv.Update(e, func(tx kv.Txn) error { return tx.Set([]byte(keyLoading), []byte("not json")) }); err != nil {
		t.Fatal(err)
	}
	if err := BeginLoad(e, mark, false); !errors.As(err, &ie) || ie.Mark.Source != "(unreadable mark)" {
		t.Fatalf("a claim of a store with a damaged mark: %v", err)
	}
	if err := BeginLoad(e, mark, true); err != nil {
		t.Fatal(err)
	}
	if err := EndLoad(e); err != nil {
		t.Fatal(err)
	}
	if empty, err := kv.IsEmpty(e); err != nil || !empty {
		t.Fatalf("after a discarded load and an empty one: empty %v, %v", empty, err)
	}
}
