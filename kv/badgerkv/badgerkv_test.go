package badgerkv_test

import (
	"errors"
	"testing"

	"certmail/kv"
	"certmail/kv/badgerkv"
	"certmail/kv/kvtest"
)

func TestConformance(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Engine {
		db, err := badgerkv.Open(badgerkv.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

// TestInMemory: the in-memory store (tests, benchmarks) keeps values of
// up to InMemoryMaxValue bytes.
func TestInMemory(t *testing.T) {
	db, err := badgerkv.Open(badgerkv.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v := make([]byte, badgerkv.InMemoryMaxValue)
	if err := kv.Update(db, func(tx kv.Txn) error { return tx.Set([]byte("k"), v) }); err != nil {
		t.Fatal(err)
	}
	err = kv.Update(db, func(tx kv.Txn) error { return tx.Set([]byte("k2"), make([]byte, badgerkv.InMemoryMaxValue+1)) })
	if !errors.Is(err, badgerkv.ErrValueTooBig) {
		t.Errorf("writing one byte more: %v; want ErrValueTooBig", err)
	}
	err = kv.View(db, func(tx kv.Txn) error {
		got, err := tx.Get([]byte("k"), nil)
		if err == nil && len(got) != len(v) {
			t.Errorf("got %d bytes, want %d", len(got), len(v))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
