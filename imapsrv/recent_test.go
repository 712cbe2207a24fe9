package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// showRecent logs in a raw client that keeps \Recent (rawClient.ShowRecent).
func showRecent(ts *testServer, user string) *rawClient {
	rc := ts.rawLogin(user)
	rc.ShowRecent = true
	return rc
}

// recentFlagged returns the sequence numbers whose FETCH shows \Recent.
func recentFlagged(lines []string) string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, " FETCH (") && strings.Contains(l, `\Recent`) {
			out = append(out, strings.Fields(l)[1])
		}
	}
	return strings.Join(out, " ")
}

// TestRecent: RFC 3501 2.3.2. A session is IMAP4rev1 until ENABLE
// IMAP4rev2. The first read-write SELECT after messages arrive has them
// as \Recent and no other session does; EXAMINE sees them without
// taking them; STATUS (RECENT) counts what the next SELECT takes; mail
// arriving while a session has the mailbox selected is recent to it
// (EXISTS, then RECENT); SEARCH RECENT, NEW and OLD follow. RECENT was
// always 0 and no message ever \Recent.
func TestRecent(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 3)
	ts.deliver("alice", "INBOX", simpleMessage("read", "x"), `\Seen`)

	a := showRecent(ts, "alice")
	mustContain(t, a.ok(`STATUS INBOX (RECENT MESSAGES)`), "RECENT 4")
	// EXAMINE: recent, but claims nothing (RFC 3501 6.3.2).
	ro := showRecent(ts, "alice")
	mustContain(t, ro.ok(`EXAMINE INBOX`), "* 4 RECENT")
	mustContain(t, a.ok(`STATUS INBOX (RECENT)`), "RECENT 4")

	mustContain(t, a.ok(`SELECT INBOX`), "* 4 RECENT")
	if got := recentFlagged(a.ok(`FETCH 1:* (FLAGS)`)); got != "1 2 3 4" {
		t.Errorf("first SELECT: \\Recent on %q, want 1 2 3 4", got)
	}
	mustContain(t, a.ok(`FETCH 4 (FLAGS)`), `FLAGS (\Recent \Seen)`)
	for criteria, want := range map[string]string{
		"RECENT": "* SEARCH 1 2 3 4", "NEW": "* SEARCH 1 2 3", "OLD": "* SEARCH",
		"UNSEEN NOT RECENT": "* SEARCH",
	} {
		if got := a.ok(`SEARCH ` + criteria); len(got) != 1 || strings.TrimSpace(got[0]) != want {
			t.Errorf("SEARCH %s: %q, want %q", criteria, got, want)
		}
	}
	mustContain(t, a.ok(`STATUS INBOX (RECENT)`), "RECENT 0")

	// A second session: nothing recent.
	b := showRecent(ts, "alice")
	mustContain(t, b.ok(`SELECT INBOX`), "* 0 RECENT")
	if got := recentFlagged(b.ok(`FETCH 1:* (FLAGS)`)); got != "" {
		t.Errorf("second SELECT: \\Recent on %q", got)
	}
	if got := b.ok(`SEARCH OLD`); strings.TrimSpace(got[0]) != "* SEARCH 1 2 3 4" {
		t.Errorf("second session SEARCH OLD: %q", got)
	}

	// New mail while selected: recent to the latest read-write selector
	// (b), EXISTS then RECENT; a's count stays.
	ts.deliver("alice", "INBOX", simpleMessage("new", "y"))
	up := b.ok(`NOOP`)
	mustContain(t, up, "* 5 EXISTS")
	if i, j := indexOf(up, "* 5 EXISTS"), indexOf(up, "* 1 RECENT"); j < 0 || j < i {
		t.Errorf("b after delivery: %q, want EXISTS then * 1 RECENT", up)
	}
	if got := recentFlagged(b.ok(`FETCH 5 (FLAGS)`)); got != "5" {
		t.Errorf("new message not \\Recent in b: %q", got)
	}
	up = a.ok(`NOOP`)
	mustContain(t, up, "* 5 EXISTS")
	mustNotContain(t, up, "* 1 RECENT")
	if got := recentFlagged(a.ok(`FETCH 5 (FLAGS)`)); got != "" {
		t.Errorf("new message \\Recent in a too")
	}
	mustContain(t, a.ok(`STATUS INBOX (RECENT)`), "RECENT 0")

	// IMAP4rev2: no RECENT response, no \Recent.
	c := showRecent(ts, "alice")
	ts.deliver("alice", "INBOX", simpleMessage("newer", "z"))
	c.ok(`ENABLE IMAP4rev2`)
	sel := c.ok(`SELECT INBOX`)
	for _, l := range append(sel, c.ok(`FETCH 1:* (FLAGS)`)...) {
		if strings.Contains(l, "RECENT") || strings.Contains(l, `\Recent`) {
			t.Errorf("IMAP4rev2 session heard of \\Recent: %q", l)
		}
	}
	// The message went to b, which has INBOX selected: nobody else
	// sees it as recent.
	mustContain(t, b.ok(`NOOP`), "* 2 RECENT")
	d := showRecent(ts, "alice")
	mustContain(t, d.ok(`SELECT INBOX`), "* 0 RECENT")
}

// TestRecentClaimsKept: a message that arrived while a session had the
// mailbox selected stays claimed once that session is gone and the
// server restarted (the claim is stored when the session lets the
// mailbox go), so no later session sees it as recent again.
func TestRecentClaimsKept(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)
	a := showRecent(ts, "alice")
	mustContain(t, a.ok(`SELECT INBOX`), "* 2 RECENT")
	ts.deliver("alice", "INBOX", simpleMessage("arrives", "x"))
	mustContain(t, a.ok(`NOOP`), "* 3 RECENT")
	a.ok(`LOGOUT`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		ts.restart()
		b := showRecent(ts, "alice")
		st := b.ok(`STATUS INBOX (RECENT)`)
		if strings.Contains(st[0], "RECENT 0") || time.Now().After(deadline) {
			mustContain(t, st, "RECENT 0")
			mustContain(t, b.ok(`SELECT INBOX`), "* 0 RECENT")
			break
		}
		// LOGOUT is answered before the session's Close stores the
		// claim: try again.
		time.Sleep(50 * time.Millisecond)
	}
}

func indexOf(lines []string, s string) int {
	for i, l := range lines {
		if l == s {
			return i
		}
	}
	return -1
}

// TestRecentNeverAboveExists: a RECENT count names only messages the
// client has been told of. A MOVE into Acknowledge releases a message
// into INBOX whose EXISTS waits for the next poll (release_test.go); the
// RECENT written with the MOVE's response counted it, so the client
// heard of more recent messages than it had (imaptest stress: "seq too
// high").
func TestRecentNeverAboveExists(t *testing.T) {
	ts, _ := newReleaseServer(t)
	ts.deliver("alice", "INBOX", "Subject: stub\r\n\r\nx\r\n")
	rc := showRecent(ts, "alice")
	mustContain(t, rc.ok(`SELECT INBOX`), "* 1 RECENT")
	up := rc.ok(`MOVE 1 Acknowledge`)
	for _, l := range up {
		var n int
		if _, err := fmt.Sscanf(l, "* %d RECENT", &n); err == nil && n > 0 {
			t.Errorf("MOVE: %q with no message announced: %q", l, up)
		}
	}
	up = rc.ok(`NOOP`)
	mustContain(t, up, "* 1 EXISTS")
	mustContain(t, up, "* 1 RECENT")
}

// TestRecentFreshMailbox: a mailbox no session has claimed from yet
// stores no RecentUID (0). The first SELECT or EXAMINE of it, empty,
// took the range 1:0 of UIDs as its recent ones, and a UID range ending
// in 0 is 1:* in go-imap: every message that arrived later was \Recent
// to that session too, besides the one selecting it later (imaptest
// stress against a fresh store: "\Recent flag in multiple sessions").
func TestRecentFreshMailbox(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ro := showRecent(ts, "alice")
	mustContain(t, ro.ok(`EXAMINE INBOX`), "* 0 RECENT")
	a := showRecent(ts, "alice")
	mustContain(t, a.ok(`SELECT INBOX`), "* 0 RECENT")
	b := showRecent(ts, "alice")
	mustContain(t, b.ok(`SELECT INBOX`), "* 0 RECENT")

	ts.deliver("alice", "INBOX", simpleMessage("first", "x"))
	mustContain(t, b.ok(`NOOP`), "* 1 RECENT")
	if got := recentFlagged(b.ok(`FETCH 1 (FLAGS)`)); got != "1" {
		t.Errorf("b, the latest to SELECT: \\Recent on %q, want 1", got)
	}
	for name, c := range map[string]*rawClient{"a (SELECT)": a, "ro (EXAMINE)": ro} {
		up := c.ok(`NOOP`)
		mustContain(t, up, "* 1 EXISTS")
		mustNotContain(t, up, "* 1 RECENT")
		if got := recentFlagged(c.ok(`FETCH 1 (FLAGS)`)); got != "" {
			t.Errorf("%s: \\Recent on %q, as in b", name, got)
		}
		if got := c.ok(`SEARCH RECENT`); strings.TrimSpace(got[0]) != "* SEARCH" {
			t.Errorf("%s: SEARCH RECENT %q", name, got)
		}
	}
}
