package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSoleNodeSeesCLIDelivery: a node alone on its database takes the
// sole-writer lease once it has seen no other writer for 5 s, and then
// answers NOOP and SELECT from memory (kv/pgkv/sole.go). A `certmail
// deliver` run meanwhile (another process writing) takes the lease from
// it, exits 0 at once, and the node's session that has the mailbox
// selected reports the message at its next NOOP.
func TestSoleNodeSeesCLIDelivery(t *testing.T) {
	dsn := pg.DB(t)
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--store", dsn, "--data", dir).must(t, 0)
	srv := startServer(t, dir, "--store", dsn, "--node", "a", "--imap", "127.0.0.1:0")
	c := dialIMAP(t, srv.imap, "alice", "pw")
	if out := c.cmd("SELECT INBOX"); !strings.Contains(out, "* 0 EXISTS") {
		t.Fatalf("SELECT: %s", out)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	held := func() bool {
		var h bool
		if err := conn.QueryRow(context.Background(), "SELECT length(holder) > 0 AND until > clock_timestamp() FROM certmail_lease WHERE name = 'sole'").Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	for n := 1; n <= 2; n++ {
		deadline := time.Now().Add(20 * time.Second)
		for !held() {
			if time.Now().After(deadline) {
				t.Fatalf("the node alone did not take the sole-writer lease within 20 s\n%s", srv.logs())
			}
			c.cmd("NOOP")
			time.Sleep(200 * time.Millisecond)
		}
		c.cmd("NOOP") // answered from memory
		start := time.Now()
		certmail(t, "Subject: from the CLI\r\n\r\nhello\r\n", "deliver", "--to", "alice", "--store", dsn, "--data", dir).must(t, 0)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("deliver beside the lease's holder took %v", took)
		}
		if out := c.cmd("NOOP"); !strings.Contains(out, "EXISTS") {
			t.Fatalf("round %d: NOOP after a delivery by the CLI reported no new message: %q", n, out)
		}
	}
}
