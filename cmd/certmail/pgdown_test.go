package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"certmail/kv/pgkv/pgtest"
)

// TestServeWhileDatabaseDown: a node on a PostgreSQL server that stops
// and starts again. While it is down, LMTP answers a temporary failure
// (4xx: the MTA keeps the message), `certmail deliver` exits 75, and an
// IMAP login is refused (NO), and nothing is acknowledged; once it is up
// again the same node takes mail by itself, without a restart, and every
// acknowledged message is there once.
func TestServeWhileDatabaseDown(t *testing.T) {
	c := pgtest.Start(t) // a cluster of its own: this test stops it
	dsn := c.DB(t)
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--store", dsn, "--data", dir).must(t, 0)
	srv := startServer(t, dir, "--store", dsn, "--node", "a", "--imap", "127.0.0.1:0")
	msg := func(s string) string { return fmt.Sprintf("Subject: %s\r\n\r\n%s\r\n", s, s) }
	if err := lmtpTry(srv.lmtp, "alice@example.org", msg("before")); err != nil {
		t.Fatal(err)
	}

	c.Down(t)
	err := lmtpTry(srv.lmtp, "alice@example.org", msg("while-down"))
	if err == nil || !strings.Contains(err.Error(), `"4`) {
		t.Fatalf("LMTP while the database is down: %v, want a 4xx", err)
	}
	if r := certmail(t, msg("deliver-while-down"), "deliver", "--to", "alice", "--store", dsn, "--data", dir); r.code != exitTempFail {
		t.Fatalf("deliver while the database is down: exit %d, want %d\n%s", r.code, exitTempFail, r.stderr)
	}
	if got := imapCmd(t, srv.imap, "LOGIN alice pw"); !strings.HasPrefix(got, "NO") {
		t.Fatalf("IMAP LOGIN while the database is down: %q, want NO", got)
	}

	c.Up(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := lmtpTry(srv.lmtp, "alice@example.org", msg("after"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LMTP 30s after the database came back: %v\n%s", err, srv.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := imapSession(t, srv.imap, "alice", "pw", "SELECT INBOX", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	for s, want := range map[string]int{"before": 1, "after": 1, "while-down": 0, "deliver-while-down": 0} {
		if got := strings.Count(out, "Subject: "+s+"\r\n"); got != want {
			t.Errorf("%q in the mailbox %d times, want %d:\n%s", s, got, want, out)
		}
	}
}
