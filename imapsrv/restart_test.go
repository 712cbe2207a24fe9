package imapsrv_test

import (
	"strings"
	"testing"
)

// TestRestartPersistence closes the server and the store and opens them
// again on the same directory: mailboxes, subscriptions, special uses,
// UIDVALIDITY, UIDNEXT, UIDs, flags, keywords and internal dates survive,
// and UIDs are not reused.
func TestRestartPersistence(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok(`CREATE Projects/Alpha`)
	rc.ok(`SUBSCRIBE Projects/Alpha`)
	rc.ok(`UNSUBSCRIBE Junk`)
	rc.ok(`CREATE Old (USE (\Archive))`)
	rc.ok(`RENAME Old "Old Mail"`)
	for i := 0; i < 5; i++ {
		rc.appendRaw(`INBOX (\Seen) "01-Feb-2024 10:00:00 +0000"`, simpleMessage("m"+itoa(uint32(i)), "x"))
	}
	rc.ok(`SELECT INBOX`)
	rc.ok(`STORE 2 FLAGS ($Label1 \Flagged)`)
	rc.ok(`STORE 3 -FLAGS (\Seen)`)
	rc.ok(`STORE 4,5 +FLAGS (\Deleted)`)
	rc.ok(`EXPUNGE`) // UIDs 4 and 5 gone; UIDNEXT stays 6
	rc.ok(`COPY 1 Projects/Alpha`)

	before := snapshot(t, rc)
	ts.restart()
	rc = ts.rawLogin("alice")
	after := snapshot(t, rc)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("after restart %s:\n got %q\nwant %q", k, after[k], v)
		}
	}
	// UIDs are not reused: the next message is UID 6.
	if _, st := rc.appendRaw("INBOX", simpleMessage("after restart", "y")); !strings.Contains(st, " 6]") {
		t.Errorf("APPEND after restart: %q", st)
	}
	mustContain(t, rc.ok(`STATUS Projects/Alpha (UIDNEXT)`), "UIDNEXT 2")
	// And again, with a session open across the restart: it is
	// disconnected, and a new one sees everything.
	rc.ok(`SELECT INBOX`)
	ts.restart()
	if _, err := rc.tryReadLine(5e9); err == nil {
		// A BYE or nothing: either way the next read fails.
		if _, err := rc.tryReadLine(5e9); err == nil {
			t.Errorf("session survived a server restart")
		}
	}
	rc = ts.rawLogin("alice")
	mustContain(t, rc.ok(`STATUS INBOX (MESSAGES UIDNEXT)`), "MESSAGES 4", "UIDNEXT 7")
}

// snapshot records what a client can observe of the account.
func snapshot(t *testing.T, rc *rawClient) map[string]string {
	t.Helper()
	s := map[string]string{}
	s["LIST"] = strings.Join(rc.ok(`LIST "" "*" RETURN (SUBSCRIBED SPECIAL-USE)`), "\n")
	s["LSUB"] = strings.Join(rc.ok(`LSUB "" "*"`), "\n")
	for _, mb := range []string{"INBOX", "Projects/Alpha", `"Old Mail"`, "Trash"} {
		s["STATUS "+mb] = strings.Join(rc.ok(`STATUS `+mb+` (MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE)`), "\n")
		var sel []string
		for _, l := range rc.ok(`EXAMINE ` + mb) {
			if !strings.Contains(l, "[CLOSED]") {
				sel = append(sel, l)
			}
		}
		s["EXAMINE "+mb] = strings.Join(sel, "\n")
		s["FETCH "+mb] = strings.Join(rc.ok(`FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[])`), "\n")
		rc.ok(`UNSELECT`)
	}
	return s
}
