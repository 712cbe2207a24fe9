package pgkv

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"certmail/kv"
)

// TestNotify: a wake-up published in a transaction reaches a subscriber
// on another engine (another node) after the commit, and never for a
// transaction discarded or failing to commit; a subscriber whose
// connection is killed listens again by itself and says so with an empty
// payload; NoNotify turns it all off.
func TestNotify(t *testing.T) {
	dsn := pg.DB(t)
	a, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan string, 16)
	stop, err := b.Subscribe(func(p string) { got <- p })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	expect := func(want string) {
		t.Helper()
		select {
		case p := <-got:
			if p != want {
				t.Fatalf("payload %q, want %q", p, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no wake-up %q", want)
		}
	}
	none := func() {
		t.Helper()
		select {
		case p := <-got:
			t.Fatalf("unexpected wake-up %q", p)
		case <-time.After(300 * time.Millisecond):
		}
	}

	// Committed: delivered, with the write visible by then.
	tx, _ := a.Begin(true)
	if err := tx.Set([]byte("k"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := a.Notify(tx, "one"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	expect("one")
	if err := kv.View(b, func(tx kv.Txn) error {
		v, err := tx.Get([]byte("k"), nil)
		if err == nil && string(v) != "1" {
			err = errors.New("wrong value")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// A notification alone commits too.
	tx, _ = a.Begin(true)
	a.Notify(tx, "alone")
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	expect("alone")

	// Discarded, after a read (BEGIN sent): nothing.
	tx, _ = a.Begin(true)
	tx.Get([]byte("k"), nil)
	tx.Set([]byte("k"), []byte("2"))
	a.Notify(tx, "discarded")
	tx.Discard()
	none()

	// A commit that fails (serialization conflict): nothing.
	t1, _ := a.Begin(true)
	t2, _ := a.Begin(true)
	t1.Get([]byte("k"), nil)
	t2.Get([]byte("k"), nil)
	t1.Set([]byte("k"), []byte("3"))
	t2.Set([]byte("k"), []byte("4"))
	a.Notify(t1, "first")
	a.Notify(t2, "second")
	if err := t1.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := t2.Commit(); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("second commit: %v, want a conflict", err)
	}
	expect("first")
	none()

	// Read-only transactions cannot notify.
	ro, _ := a.Begin(false)
	if err := a.Notify(ro, "x"); err == nil {
		t.Fatal("Notify in a read-only transaction accepted")
	}
	ro.Discard()

	// The listening session is killed: the subscriber listens again,
	// says so, and hears later commits.
	var killed int
	if err := a.pool.QueryRow(context.Background(),
		"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() AND datname = current_database()").Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no listening session found")
	}
	expect("")
	tx, _ = a.Begin(true)
	a.Notify(tx, "after")
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	expect("after")

	// NoNotify: no subscription, and Notify is harmless.
	c, err := Open(context.Background(), dsn, Options{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Subscribe(func(string) {}); !errors.Is(err, kv.ErrNoNotify) {
		t.Fatalf("Subscribe with NoNotify: %v", err)
	}
	tx, _ = c.Begin(true)
	if err := c.Notify(tx, "off"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	none()
}

// TestNotifyRefused: on a database whose pg_notify refuses (CockroachDB,
// YugabyteDB without LISTEN/NOTIFY: here a pg_notify of the schema's own,
// found before pg_catalog's, that raises feature_not_supported), an engine
// that only writes (a CLI command, which never subscribes) still commits:
// it asks once and then sends no notifications.
func TestNotifyRefused(t *testing.T) {
	dsn := pg.DB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("search_path")
	admin, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(), `CREATE FUNCTION `+pgx.Identifier{schema}.Sanitize()+`.pg_notify(text, text) RETURNS void LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'LISTEN/NOTIFY is not supported' USING ERRCODE = 'feature_not_supported'; END $$`); err != nil {
		t.Fatal(err)
	}
	q.Set("search_path", schema+",pg_catalog")
	u.RawQuery = q.Encode()
	e, err := Open(context.Background(), u.String(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i := range 2 {
		tx, _ := e.Begin(true)
		tx.Set([]byte("k"), []byte{byte(i)})
		if err := e.Notify(tx, "x"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit %d with a refused pg_notify: %v", i, err)
		}
	}
	if _, err := e.Subscribe(func(string) {}); !errors.Is(err, kv.ErrNoNotify) {
		t.Fatalf("Subscribe: %v, want ErrNoNotify", err)
	}
}
