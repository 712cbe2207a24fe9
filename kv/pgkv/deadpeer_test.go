package pgkv

import (
	"context"
	"testing"
	"time"

	"certmail/kv"
)

// TestSessionSettings: every session of the engine, pooled or listening,
// has TCP keepalives that let PostgreSQL end it about DeadPeerAfter after
// the node's machine vanished (no FIN, no RST), and an idle-in-transaction
// timeout, whatever the server's defaults (Linux keepalives after two
// hours; no timeout).
func TestSessionSettings(t *testing.T) {
	ctx := context.Background()
	e, err := Open(ctx, pg.DB(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	want := map[string]string{
		"tcp_keepalives_idle":                 "10",
		"tcp_keepalives_interval":             "3",
		"tcp_keepalives_count":                "3",
		"idle_in_transaction_session_timeout": "10min",
	}
	for name, v := range want {
		got, err := e.Setting(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got != v {
			t.Errorf("pooled session: %s = %s, want %s", name, got, v)
		}
	}
	// The connection that LISTENs too: a vanished node's would hold a
	// connection slot for hours.
	conn, err := e.listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var idle string
	if err := conn.QueryRow(ctx, "SELECT current_setting('tcp_keepalives_idle')").Scan(&idle); err != nil {
		t.Fatal(err)
	}
	if idle != "10" {
		t.Errorf("listening session: tcp_keepalives_idle = %s, want 10", idle)
	}

	// Negative: the server's settings stand.
	e2, err := Open(ctx, pg.DB(t), Options{DeadPeerAfter: -1, IdleInTransaction: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if got, err := e2.Setting(ctx, "idle_in_transaction_session_timeout"); err != nil || got != "0" {
		t.Errorf("with IdleInTransaction -1: idle_in_transaction_session_timeout = %s (%v), want the server's 0", got, err)
	}
}

// TestHungNodeLetsGo: a node that stops in the middle of a transaction
// (hung, its machine alive: keepalives are answered) does not keep its
// snapshot open: PostgreSQL ends the session after IdleInTransaction,
// the node's next statement on that transaction fails, and the engine
// goes on with new transactions on a new connection.
func TestHungNodeLetsGo(t *testing.T) {
	ctx := context.Background()
	e, err := Open(ctx, pg.DB(t), Options{IdleInTransaction: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	must(t, kv.Update(e, func(tx kv.Txn) error { return tx.Set([]byte("k"), []byte("v")) }))

	tx, err := e.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Discard() // first: Close waits for its connection
	if _, err := tx.Get([]byte("k"), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the node hangs, its transaction open
	if _, err := tx.Get([]byte("k"), nil); err == nil {
		t.Fatal("a transaction idle for 4 times IdleInTransaction still reads: the server kept its session")
	}
	tx.Discard()

	var v []byte
	if err := kv.View(e, func(tx kv.Txn) error {
		var err error
		v, err = tx.Get([]byte("k"), nil)
		return err
	}); err != nil || string(v) != "v" {
		t.Fatalf("after the session was ended: %q, %v", v, err)
	}
}
