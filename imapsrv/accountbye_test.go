package imapsrv_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"certmail/imapsrv"
	"certmail/mailbox"
)

// byeThenClose reads rc until its connection closes, within limit, and
// fails unless the server said `* BYE` with the account-deleted text
// first and nothing after it (RFC 9051 7.1.5: a server closing a
// connection sends BYE).
func byeThenClose(t *testing.T, who string, rc *rawClient, limit time.Duration) {
	t.Helper()
	byeSaysThenClose(t, who, rc, limit, "Account deleted")
}

// byeSaysThenClose is byeThenClose for a BYE whose text contains want.
func byeSaysThenClose(t *testing.T, who string, rc *rawClient, limit time.Duration, want string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var bye string
	for time.Now().Before(deadline) {
		line, err := rc.tryReadLine(time.Until(deadline))
		if err != nil {
			if bye == "" {
				t.Errorf("%s: the connection closed without a BYE (%v)", who, err)
			}
			return
		}
		switch {
		case bye != "":
			t.Errorf("%s: %q after the BYE", who, line)
		case strings.HasPrefix(line, "* BYE "):
			bye = line
			if !strings.Contains(line, want) {
				t.Errorf("%s: %q does not say %q", who, line, want)
			}
		}
	}
	t.Errorf("%s: still open %v after the server was told to end it (BYE %q)", who, limit, bye)
}

// TestDeletedAccountSessionsGetBye: deleting an account ends each of its
// sessions with an untagged BYE that says why, then closes the connection,
// whatever state the session is in: logged in, a mailbox selected, in
// IDLE. Before, the connection was just closed, which a client shows as
// the server going away, and tries again. Another account's session goes
// on.
func TestDeletedAccountSessionsGetBye(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("bob")
	ts.addUser("carol")
	ts.deliver("bob", "INBOX", simpleMessage("bob's", "hello"))
	authenticated := ts.rawLogin("bob")
	selected := ts.rawLogin("bob")
	selected.ok("SELECT INBOX")
	idle := ts.rawLogin("bob")
	idle.ok("SELECT INBOX")
	idle.write("i1 IDLE\r\n")
	if l := idle.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	other := ts.rawLogin("carol")
	other.ok("SELECT INBOX")

	if err := ts.store.DeleteAccount("bob"); err != nil {
		t.Fatal(err)
	}
	byeThenClose(t, "bob, logged in", authenticated, 5*time.Second)
	byeThenClose(t, "bob, INBOX selected", selected, 5*time.Second)
	byeThenClose(t, "bob, in IDLE", idle, 5*time.Second)
	other.ok("NOOP")
}

// TestDeletedAccountByeAcrossNodes: two nodes on one PostgreSQL database.
// An account deleted through node A: its session on node B, which hears
// of the deletion from the change journal, gets the BYE too.
func TestDeletedAccountByeAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	onB := b.rawLogin("alice")
	onB.ok("SELECT INBOX")
	onA := a.rawLogin("alice")
	if err := a.store.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	byeThenClose(t, "alice on A", onA, 5*time.Second)
	byeThenClose(t, "alice on B", onB, 5*time.Second)
}

// TestDeletedAccountCommandNotRun: a command a deleted account's session
// reads before its BYE is out (the BYE waits for the response being
// written) does not run as the account: the name may already be someone
// else's, and `CREATE` there would make a mailbox in the new owner's
// account. The BYE comes, and the connection closes, all the same.
func TestDeletedAccountCommandNotRun(t *testing.T) {
	ts := newTestServer(t)
	release := make(chan struct{})
	imapsrv.BeforeBye(ts.srv, func() { <-release })
	ts.addUser("bob")
	old := ts.rawLogin("bob")
	old.ok("SELECT INBOX")

	if err := ts.store.DeleteAccount("bob"); err != nil {
		close(release)
		t.Fatal(err)
	}
	if err := ts.store.CreateAccount("bob", "new pw", mailbox.DefaultMailboxes()); err != nil {
		close(release)
		t.Fatal(err)
	}
	old.write("t9 CREATE Stolen\r\n")
	// Long enough for the command to have run, were it going to.
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := ts.store.Mailbox("bob", "Stolen"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	byeThenClose(t, "the old bob's session", old, 5*time.Second)
	if _, err := ts.store.Mailbox("bob", "Stolen"); !errors.Is(err, mailbox.ErrNoMailbox) {
		t.Errorf("the new bob's mailbox Stolen: %v; the old bob's session created it", err)
	}
}

// TestShutdownSaysBye: a server that stops says `* BYE Server shutting
// down` to each logged-in session, in whatever state, before closing its
// connection (RFC 9051 7.1.5), so that a client reconnects, to another
// node behind the same address, rather than report a network failure.
// Before, the connections were just closed.
func TestShutdownSaysBye(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("bob")
	authenticated := ts.rawLogin("bob")
	selected := ts.rawLogin("bob")
	selected.ok("SELECT INBOX")
	idle := ts.rawLogin("bob")
	idle.ok("SELECT INBOX")
	idle.write("i1 IDLE\r\n")
	if l := idle.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	done := make(chan error, 1)
	go func() { done <- ts.srv.Close() }()
	byeSaysThenClose(t, "logged in", authenticated, 5*time.Second, "Server shutting down")
	byeSaysThenClose(t, "INBOX selected", selected, 5*time.Second, "Server shutting down")
	byeSaysThenClose(t, "in IDLE", idle, 5*time.Second, "Server shutting down")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}

// TestLoginDuringDeletion: an account deleted after LOGIN checked its
// password and before the session was registered (when the deletion
// found no session of it to log out) does not leave a session logged in
// as it: the LOGIN fails. A LOGIN while another account is deleted goes
// on.
func TestLoginDuringDeletion(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("bob")
	ts.addUser("carol")
	ts.addUser("dave")
	var deleteNext string
	imapsrv.AfterPassword(ts.srv, func(string) {
		if deleteNext != "" {
			if err := ts.store.DeleteAccount(deleteNext); err != nil {
				t.Error(err)
			}
			deleteNext = ""
		}
	})
	rc := ts.raw()
	deleteNext = "bob"
	if _, st := rc.cmd(`LOGIN bob "` + testPassword + `"`); !strings.HasPrefix(st, "NO") {
		t.Fatalf("LOGIN of an account deleted during it: %q", st)
	}
	deleteNext = "dave"
	if _, st := rc.cmd(`LOGIN carol "` + testPassword + `"`); !strings.HasPrefix(st, "OK") {
		t.Fatalf("LOGIN while another account is deleted: %q", st)
	}
}
