package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// imapSession logs in as user on addr and runs each command in turn,
// returning everything the server said (tagged answers included); a NO
// or BAD fails the test.
func imapSession(t *testing.T, addr, user, pass string, cmds ...string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	var all strings.Builder
	for i, c := range append([]string{fmt.Sprintf("LOGIN %s %s", user, pass)}, cmds...) {
		tag := fmt.Sprintf("t%d", i)
		fmt.Fprintf(conn, "%s %s\r\n", tag, c)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			all.WriteString(l)
			if st, ok := strings.CutPrefix(l, tag+" "); ok {
				if !strings.HasPrefix(st, "OK") {
					t.Fatalf("%s: %s", c, st)
				}
				break
			}
		}
	}
	fmt.Fprintf(conn, "z LOGOUT\r\n")
	return all.String()
}

// TestServeOnPostgres runs the real binary on a private PostgreSQL
// cluster: commands reach the database with no node running and while
// one runs (no admin socket); the node takes mail over LMTP and from
// `certmail deliver`, serves it over IMAP (APPEND too) and the sender API
// over HTTP, and after a restart, and after a kill -9 right after an
// LMTP 250, everything is still there. A second
// node's data directory without the gateway key is refused until the key
// is copied.
func TestServeOnPostgres(t *testing.T) {
	dsn := pg.DB(t)
	dir := t.TempDir()
	st := []string{"--store", dsn, "--data", dir}
	arg := func(a ...string) []string { return append(a, st...) }

	// An empty database is no store, except for user add.
	if r := certmail(t, "", arg("user", "list")...).must(t, exitFailure); !strings.Contains(r.stderr, "no certmail store in postgres://") || strings.Contains(r.stderr, "passfile") {
		t.Fatalf("user list on an empty database: %s", r.stderr)
	}
	if r := certmail(t, "alice-pw\n", arg("user", "add", "alice", "--password-stdin")...).must(t, 0); !strings.Contains(r.stderr, "creating a new store in postgres://") {
		t.Fatalf("user add: %s", r.stderr)
	}
	certmail(t, "bob-pw\n", arg("user", "add", "bob", "--password-stdin")...).must(t, 0)
	certmail(t, "", arg("user", "quota", "bob", "--messages", "50")...).must(t, 0)
	certmail(t, "Subject: before\r\n\r\nwhile no node runs\r\n", arg("deliver", "--to", "alice")...).must(t, 0)

	// A password in the URL is refused, and not repeated.
	bad := strings.Replace(dsn, "postgres@", "postgres:hunter2@", 1)
	if r := certmail(t, "", "user", "list", "--store", bad, "--data", dir).must(t, exitFailure); !strings.Contains(r.stderr, "--store: the URL holds a password") || strings.Contains(r.stderr, "hunter2") {
		t.Fatalf("a password in the URL: %s", r.stderr)
	}

	srv := startServer(t, dir, "--store", dsn, "--node", "a", "--imap", "127.0.0.1:0")
	if _, err := os.Stat(filepath.Join(dir, "admin.sock")); !os.IsNotExist(err) {
		t.Fatalf("a node on PostgreSQL made an admin socket: %v", err)
	}
	// Acknowledgements wait for a durable commit.
	if !strings.Contains(srv.logs(), "synchronous_commit=on") {
		t.Fatalf("the node does not say its sessions commit synchronously:\n%s", srv.logs())
	}
	if !strings.Contains(srv.logs(), "node=a") {
		t.Fatalf("the start line does not name the node:\n%s", srv.logs())
	}
	// The node's sessions are in pg_stat_activity under its name.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'certmail-a'").Scan(&n); err != nil || n == 0 {
		t.Fatalf("sessions of node a: %d %v", n, err)
	}

	lmtpDeliver(t, srv.lmtp, "alice@example.org", "over LMTP")
	// Commands go to the database, not through the node.
	certmail(t, "Subject: cli\r\n\r\nfrom deliver while a node runs\r\n", arg("deliver", "--to", "alice")...).must(t, 0)
	certmail(t, "carol-pw\n", arg("user", "add", "carol", "--password-stdin")...).must(t, 0)
	if r := certmail(t, "", arg("user", "list")...).must(t, 0); r.stdout != "alice\nbob\ncarol\n" {
		t.Fatalf("user list: %q", r.stdout)
	}
	if strings.Contains(srv.logs(), "admin: user added") {
		t.Fatalf("a command went through the node:\n%s", srv.logs())
	}
	// A user added by a command logs in on the node at once.
	imapSession(t, srv.imap, "carol", "carol-pw", "SELECT INBOX")
	out := imapSession(t, srv.imap, "alice", "alice-pw", "SELECT INBOX",
		"APPEND INBOX {30+}\r\nSubject: appended\r\n\r\nover IMAP",
		"FETCH 1:* (BODY.PEEK[TEXT])")
	for _, want := range []string{"while no node runs", "over LMTP", "from deliver while a node runs", "over IMAP"} {
		if !strings.Contains(out, want) {
			t.Fatalf("IMAP does not show %q:\n%s", want, out)
		}
	}

	// The sender API, with a token made by a command.
	token := strings.TrimSpace(certmail(t, "", arg("token", "add", "acme")...).must(t, 0).stdout)
	label := submitItem(t, srv, token, "bob")
	if r := certmail(t, "", arg("item", "list")...).must(t, 0); !strings.Contains(r.stdout, label) {
		t.Fatalf("item list does not show %s: %s", label, r.stdout)
	}
	if status, body := apiCall(t, "GET", base(srv)+"/v1/items/"+label, token, nil); status != 200 {
		t.Fatalf("item over HTTP: %d %s", status, body)
	}

	// A backup of the database while the node runs, restored into
	// another (empty) database with a new data directory.
	bak := filepath.Join(t.TempDir(), "pg.bak")
	certmail(t, "", arg("backup", "--out", bak)...).must(t, 0)
	dsn2, dir2 := pg.DB(t), filepath.Join(t.TempDir(), "restored")
	if r := certmail(t, "", "restore", bak, "--store", dsn2, "--data", dir2).must(t, 0); !strings.Contains(r.stdout, "into postgres://") {
		t.Fatalf("restore: %s", r.stdout)
	}
	if r := certmail(t, "", "user", "list", "--store", dsn2, "--data", dir2).must(t, 0); r.stdout != "alice\nbob\ncarol\n" {
		t.Fatalf("user list of the restored database: %q", r.stdout)
	}
	if r := certmail(t, "", "restore", bak, "--store", dsn2, "--data", filepath.Join(t.TempDir(), "again")).must(t, exitFailure); !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("a restore into a database that holds a store: %s", r.stderr)
	}

	// Restart: everything is still there.
	srv.stop(t)
	if r := certmail(t, "", arg("user", "list")...).must(t, 0); r.stdout != "alice\nbob\ncarol\n" {
		t.Fatalf("user list with no node: %q", r.stdout)
	}
	srv = startServer(t, dir, "--store", dsn, "--node", "a", "--imap", "127.0.0.1:0")
	out = imapSession(t, srv.imap, "alice", "alice-pw", "SELECT INBOX", "FETCH 1:* (BODY.PEEK[TEXT])")
	if !strings.Contains(out, "* 4 EXISTS") || !strings.Contains(out, "over IMAP") || !strings.Contains(out, "over LMTP") {
		t.Fatalf("after a restart:\n%s", out)
	}
	if status, _ := apiCall(t, "GET", base(srv)+"/v1/items/"+label, token, nil); status != 200 {
		t.Fatalf("item after a restart: %d", status)
	}
	out = imapSession(t, srv.imap, "bob", "bob-pw", "SELECT INBOX")
	if !strings.Contains(out, "* 1 EXISTS") {
		t.Fatalf("bob's stub after a restart:\n%s", out)
	}

	// LMTP's 250 comes after the commit: a node killed right after it
	// has lost nothing.
	lmtpDeliver(t, srv.lmtp, "alice@example.org", "acknowledged, then kill -9")
	srv.kill(t)
	srv = startServer(t, dir, "--store", dsn, "--node", "a", "--imap", "127.0.0.1:0")
	out = imapSession(t, srv.imap, "alice", "alice-pw", "SELECT INBOX", "FETCH 5 (BODY.PEEK[TEXT])")
	if !strings.Contains(out, "* 5 EXISTS") || !strings.Contains(out, "acknowledged, then kill -9") {
		t.Fatalf("after kill -9:\n%s", out)
	}

	// A second node's data directory has no gateway key: refused, until
	// the first node's is copied.
	dirB := t.TempDir()
	r := certmail(t, "", "serve", "--store", dsn, "--data", dirB, "--node", "b", "--imap", "", "--lmtp", "", "--http", "")
	if r.code == 0 || !strings.Contains(r.stderr, "copy gateway.key") {
		t.Fatalf("a node without the gateway key: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dirB, "gateway.key")); !os.IsNotExist(err) {
		t.Fatalf("the refused node left a key of its own: %v", err)
	}
	if r := certmail(t, "", "user", "list", "--store", dsn, "--data", dirB).must(t, exitFailure); !strings.Contains(r.stderr, "copy gateway.key") {
		t.Fatalf("a command without the gateway key: %s", r.stderr)
	}
}

// TestMigratedStoreNeedsItsGatewayKey: a data directory whose evidence
// log is signed, migrated into PostgreSQL, cannot be opened from a data
// directory without its gateway key (which would make a new key and go on
// signing the old log with it); with the key it opens, and the key is
// then recorded for the other nodes.
func TestMigratedStoreNeedsItsGatewayKey(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	srv := startServer(t, dir) // publishes the log's first checkpoint
	srv.stop(t)
	dsn := pg.DB(t)
	certmail(t, "", "migrate", "--from", dir, "--to", dsn).must(t, 0)
	empty := t.TempDir()
	r := certmail(t, "", "user", "list", "--store", dsn, "--data", empty).must(t, exitFailure)
	if !strings.Contains(r.stderr, "already signed") || !strings.Contains(r.stderr, "copy gateway.key") {
		t.Fatalf("a migrated store opened without its key: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(empty, "gateway.key")); !os.IsNotExist(err) {
		t.Fatalf("a key was made: %v", err)
	}
	certmail(t, "", "user", "list", "--store", dsn, "--data", dir).must(t, 0)
	// Recorded now: another directory with another key is refused.
	other := t.TempDir()
	certmail(t, "pw\n", "user", "add", "bob", "--password-stdin", "--data", other).must(t, 0)
	if r := certmail(t, "", "user", "list", "--store", dsn, "--data", other).must(t, exitFailure); !strings.Contains(r.stderr, "is not the one the store's evidence is signed with") {
		t.Fatalf("another key: %s", r.stderr)
	}
}
