package imapsrv_test

import (
	"strings"
	"testing"
	"time"
)

// A STORE or EXPUNGE over a whole large mailbox ("mark all as read",
// emptying a big Trash) is more than one Badger transaction can hold; it
// must still work, and the client must see every message's new flags.
func TestStoreAndExpungeWholeLargeMailbox(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a mailbox of 11,000 messages")
	}
	const n = 11000
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.fillShared("alice", n, nil)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	// Slow under -race on a busy machine: wait longer than rc.ok does.
	slowOK := func(cmd string) []string {
		t.Helper()
		rc.write("s1 " + cmd + "\r\n")
		var untagged []string
		for {
			line, err := rc.tryReadLine(3 * time.Minute)
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if rest, ok := strings.CutPrefix(line, "s1 "); ok {
				if !strings.HasPrefix(rest, "OK") {
					t.Fatalf("%s: %s", cmd, rest)
				}
				return untagged
			}
			untagged = append(untagged, line)
		}
	}
	if got := slowOK(`UID STORE 1:* +FLAGS (\Seen \Deleted)`); len(got) != n {
		t.Fatalf("STORE answered %d FETCH responses, want %d", len(got), n)
	}
	if got := slowOK(`UID SEARCH UNSEEN`); len(got) != 1 || got[0] != "* SEARCH" {
		t.Fatalf("UNSEEN after marking all seen: %v", got)
	}
	if got := slowOK("EXPUNGE"); len(grep(got, "EXPUNGE")) != n {
		t.Fatalf("EXPUNGE answered %d responses, want %d", len(grep(got, "EXPUNGE")), n)
	}
	_, st, err := ts.store.Status("alice", "INBOX")
	if err != nil || st.Messages != 0 {
		t.Fatalf("after EXPUNGE: %+v %v", st, err)
	}
}
