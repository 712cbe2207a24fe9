package imapsrv_test

import (
	"strings"
	"testing"
	"time"

	"certmail/mailbox"
)

// TestDeletedAccountLoggedOut: deleting an account ends its sessions. One
// left running would go on as whoever is created next under the name, and
// read their mail.
func TestDeletedAccountLoggedOut(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("bob")
	ts.addUser("carol")
	ts.deliver("bob", "INBOX", simpleMessage("the old bob's", "old"))
	old := ts.rawLogin("bob")
	old.ok("SELECT INBOX")
	idle := ts.rawLogin("bob") // not selected
	other := ts.rawLogin("carol")

	if err := ts.store.DeleteAccount("bob"); err != nil {
		t.Fatal(err)
	}
	if err := ts.store.CreateAccount("bob", "new pw", mailbox.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	ts.deliver("bob", "INBOX", simpleMessage("the new bob's", "new"))

	for _, rc := range []*rawClient{old, idle} {
		rc.write(rc.nextTag() + " STATUS INBOX (MESSAGES)\r\n")
		deadline := time.Now().Add(5 * time.Second)
		for {
			line, err := rc.tryReadLine(5 * time.Second)
			if err != nil {
				break // closed: logged out
			}
			if strings.Contains(line, "STATUS") || strings.Contains(line, " OK") {
				t.Fatalf("a session of the deleted bob went on as the new one: %q", line)
			}
			if time.Now().After(deadline) {
				t.Fatal("the session of the deleted bob is still open")
			}
		}
	}
	// Other accounts' sessions go on.
	other.ok("SELECT INBOX")
}
