package testengine

import (
	"errors"
	"os"
	"testing"

	"certmail/kv"
)

var engines Engines

func TestMain(m *testing.M) { os.Exit(engines.Main(m)) }

func TestChoice(t *testing.T) {
	t.Setenv(Env, "")
	if e := engines.Open(t); e != nil {
		t.Fatalf("default engine %T, want nil (Badger, opened by the caller)", e)
	}
	t.Setenv(Env, "sqlite")
	if _, err := Name(); err == nil {
		t.Fatal("an unknown engine name accepted")
	}
	t.Setenv(Env, Postgres)
	dsn := engines.DSN(t)
	e := engines.Reopen(t, dsn)
	if err := kv.Update(e, func(tx kv.Txn) error { return tx.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	e.Close()
	// Reopened on the same database: the data is there.
	e = engines.Reopen(t, dsn)
	defer e.Close()
	err := kv.View(e, func(tx kv.Txn) error {
		v, err := tx.Get([]byte("k"), nil)
		if err == nil && string(v) != "v" {
			t.Errorf("k = %q", v)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A second engine is a fresh, empty database.
	e2 := engines.Open(t)
	defer e2.Close()
	if err := kv.View(e2, func(tx kv.Txn) error { _, err := tx.Get([]byte("k"), nil); return err }); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("fresh engine: %v, want ErrNotFound", err)
	}
}
