package imapsrv_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"certmail/imapsrv"
	"certmail/mailbox"
)

// TestFetchFastMatchesImapserver: FETCH of index items is formatted by
// certmail itself (fetchfast.go); every such command must answer byte for
// byte what imapserver's writer answers, for sequence and UID sets, every
// combination of items and macros, keywords, and a UTC and a zoned date.
func TestFetchFastMatchesImapserver(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for i := 0; i < 40; i++ {
		var flags []string
		if i%2 == 0 {
			flags = append(flags, mailbox.FlagSeen)
		}
		if i%3 == 0 {
			flags = append(flags, "$Forwarded", "Work")
		}
		if i%7 == 0 {
			flags = append(flags, mailbox.FlagDeleted, mailbox.FlagFlagged, mailbox.FlagAnswered, mailbox.FlagDraft)
		}
		ts.deliver("alice", "INBOX", simpleMessage(fmt.Sprintf("m%d", i), strings.Repeat("x", i*37)), flags...)
	}
	// An APPEND with a date in another zone.
	rc := ts.rawLogin("alice")
	body := simpleMessage("zoned", "text")
	rc.write(fmt.Sprintf("Z1 APPEND INBOX (\\Seen) \" 7-Mar-2024 23:05:09 +0530\" {%d+}\r\n%s\r\n", len(body), body))
	if _, status := rc.readUntilTagged("Z1"); !strings.HasPrefix(status, "OK") {
		t.Fatalf("APPEND: %s", status)
	}
	rc.ok("SELECT INBOX")
	rc.ok("UID STORE 5 +FLAGS (\\Seen)") // a change, as a resync sees them
	commands := []string{
		"UID FETCH 1:* (FLAGS)",
		"FETCH 1:* FLAGS",
		"FETCH 1:* FAST",
		"FETCH 3,5,7:9 (UID FLAGS RFC822.SIZE INTERNALDATE)",
		"UID FETCH 10:* (INTERNALDATE RFC822.SIZE)",
		"UID FETCH 41 (FLAGS INTERNALDATE)",
		"FETCH * UID",
		"UID FETCH 1000:2000 FLAGS",
		"UID FETCH 2,4,6 (UID)",
	}
	answers := func() [][]string {
		var out [][]string
		for _, c := range commands {
			out = append(out, rc.ok(c))
		}
		return out
	}
	fast := answers()
	imapsrv.SetSlowFetch(ts.srv, true)
	slow := answers()
	for i, c := range commands {
		if !slices.Equal(fast[i], slow[i]) {
			t.Errorf("%s:\n fast %q\n slow %q", c, fast[i], slow[i])
		}
	}
	if len(fast[0]) != 41 || !strings.Contains(strings.Join(fast[2], "\n"), `INTERNALDATE " 7-Mar-2024 23:05:09 +0530"`) {
		t.Fatalf("unexpected answers: %q", fast[2])
	}
}

// TestFetchFastLarge: a resync of more messages than one write carries.
func TestFetchFastLarge(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	const n = 3000
	ts.fillShared("alice", n, func(int) []string { return []string{mailbox.FlagSeen, "Keyword"} })
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	got := rc.ok("UID FETCH 1:* (FLAGS)")
	if len(got) != n {
		t.Fatalf("%d responses, want %d", len(got), n)
	}
	for i, l := range got {
		if want := fmt.Sprintf("* %d FETCH (UID %d FLAGS (\\Seen Keyword))", i+1, i+1); l != want {
			t.Fatalf("response %d: %q, want %q", i, l, want)
		}
	}
	rc.ok("NOOP") // the connection goes on
}
