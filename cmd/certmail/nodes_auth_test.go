package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNodesPasswordAndDeletionInForce: two nodes on one database. Node B
// has logged alice in (its password check cached); her password changed
// against the database from node A's machine (`certmail user passwd`) is
// in force on B at once: the old one refused, the new one taken, on both
// nodes, with no wait. Her account deleted the same way: the session she
// had open on B ends with a BYE that says so, and no node logs her in.
func TestNodesPasswordAndDeletionInForce(t *testing.T) {
	dsn, dirs, nodes := startNodes(t, 2, "alice", "old-pw")
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		if got := imapCmd(t, n.imap, "LOGIN alice old-pw"); !strings.HasPrefix(got, "OK") {
			t.Fatalf("LOGIN with the password: %q", got)
		}
	}
	open := dialIMAP(t, b.imap, "alice", "old-pw")
	open.cmd("SELECT INBOX")
	open.idle()

	certmail(t, "new-pw\n", "user", "passwd", "alice", "--password-stdin", "--store", dsn, "--data", dirs[0]).must(t, 0)
	for name, n := range map[string]*server{"B": b, "A": a} {
		if got := imapCmd(t, n.imap, "LOGIN alice old-pw"); !strings.HasPrefix(got, "NO") {
			t.Errorf("node %s right after the change: LOGIN with the old password %q, want NO", name, got)
		}
		if got := imapCmd(t, n.imap, "LOGIN alice new-pw"); !strings.HasPrefix(got, "OK") {
			t.Errorf("node %s right after the change: LOGIN with the new password %q, want OK", name, got)
		}
	}

	certmail(t, "", "user", "del", "alice", "--store", dsn, "--data", dirs[0]).must(t, 0)
	for name, n := range map[string]*server{"B": b, "A": a} {
		if got := imapCmd(t, n.imap, "LOGIN alice new-pw"); !strings.HasPrefix(got, "NO") {
			t.Errorf("node %s right after the deletion: LOGIN %q, want NO", name, got)
		}
	}
	// The session ends: B says BYE, with why (RFC 9051 7.1.5), and closes
	// its connection.
	start := time.Now()
	var bye string
	for {
		l, err := open.readLine(2 * time.Second)
		if err != nil {
			if time.Since(start) >= 2*time.Second {
				t.Fatalf("alice's session on B still open 2 s after her account's deletion: %v", err)
			}
			break
		}
		if strings.HasPrefix(l, "* BYE") {
			bye = l
		}
	}
	t.Logf("alice's session on B ended %v after the deletion, with %q", time.Since(start), bye)
	if !strings.Contains(bye, "Account deleted") {
		t.Errorf("alice's session on B: %q before the connection closed, want a BYE saying her account was deleted", bye)
	}
}

// TestNodesLoginBudgetShared: two real nodes on one database, with a
// budget of four failed logins an account. Wrong passwords for alice
// sent to A and B in turn lock her out on both after four in all (not
// four a node); then her right password is refused on both too, without
// being checked.
func TestNodesLoginBudgetShared(t *testing.T) {
	dsn, first := pg.DB(t), t.TempDir()
	certmail(t, "right-pw\n", "user", "add", "alice", "--password-stdin", "--store", dsn, "--data", first).must(t, 0)
	cfg := filepath.Join(t.TempDir(), "certmail.toml")
	if err := os.WriteFile(cfg, []byte("[limits]\nlogin_free_failures = 3\nlogin_max_failures = 4\nlogin_delay = \"10ms\"\nlogin_lockout = \"1h\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(first, "gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*server
	for i := range 2 {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "gateway.key"), key, 0o600); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, startServer(t, dir, "--store", dsn, "--node", string(rune('a'+i)), "--imap", "127.0.0.1:0", "--config", cfg))
	}
	for i := range 8 {
		got := imapCmd(t, nodes[i%2].imap, "LOGIN alice wrong")
		if !strings.HasPrefix(got, "NO") {
			t.Fatalf("guess %d: %q", i, got)
		}
		// The fourth failure locks the account (its answer says so).
		if locked := strings.Contains(got, "too many failed logins"); locked != (i >= 3) {
			t.Errorf("guess %d (node %c): %q; the budget is 4 over both nodes", i, 'a'+i%2, got)
		}
	}
	// Passwords checked: each node logs "login failed" for each, and
	// "login refused: too many failed logins" for a guess refused unchecked.
	var checked int
	for _, n := range nodes {
		checked += strings.Count(n.logs(), `msg="login failed"`)
	}
	if checked != 4 {
		t.Errorf("%d passwords checked over two nodes, want 4", checked)
	}
	for i, n := range nodes {
		if got := imapCmd(t, n.imap, "LOGIN alice right-pw"); !strings.Contains(got, "too many failed logins") {
			t.Errorf("node %d: the right password while locked: %q", i, got)
		}
	}
}
