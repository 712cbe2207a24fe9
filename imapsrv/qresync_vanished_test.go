package imapsrv_test

import (
	"slices"
	"strings"
	"testing"
)

// expungeLines keeps the EXPUNGE and VANISHED responses.
func expungeLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "* VANISHED") || strings.HasSuffix(l, " EXPUNGE") {
			out = append(out, l)
		}
	}
	return out
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// RFC 7162 3.2.10: once QRESYNC is enabled, a session is told of
// expunges by VANISHED uid-set, never EXPUNGE: those of its own EXPUNGE,
// UID EXPUNGE and MOVE, and those other sessions make. A session that did
// not enable it goes on getting EXPUNGE. Sequence numbers move as the
// EXPUNGEs would have moved them.
func TestQResyncVanishedNotExpunge(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc, _, _ := qresyncBox(t, ts, 12)
	plain := ts.rawLogin("alice")
	plain.ok(`SELECT INBOX`)

	// EXPUNGE: RFC 7162 3.2.7's example, "* VANISHED 405,407,410,425".
	rc.ok(`STORE 2,4:5,9 +FLAGS.SILENT (\Deleted)`)
	wantLines(t, "EXPUNGE", expungeLines(rc.ok(`EXPUNGE`)), "* VANISHED 2,4:5,9")
	wantLines(t, "EXPUNGE without QRESYNC", expungeLines(plain.ok(`NOOP`)),
		"* 2 EXPUNGE", "* 3 EXPUNGE", "* 3 EXPUNGE", "* 6 EXPUNGE")
	wantLines(t, "FETCH after VANISHED", rc.ok(`FETCH 2:3 (UID)`), "* 2 FETCH (UID 3)", "* 3 FETCH (UID 6)")

	// UID EXPUNGE.
	rc.ok(`UID STORE 3,7 +FLAGS.SILENT (\Deleted)`)
	wantLines(t, "UID EXPUNGE", expungeLines(rc.ok(`UID EXPUNGE 3,7`)), "* VANISHED 3,7")
	plain.ok(`NOOP`)

	// MOVE: COPYUID first, then VANISHED (RFC 6851 4.3 with QRESYNC).
	mv := rc.ok(`MOVE 1 Drafts`)
	if len(mv) != 2 || !strings.HasPrefix(mv[0], "* OK [COPYUID ") || mv[1] != "* VANISHED 1" {
		t.Fatalf("MOVE: %q", mv)
	}
	plain.ok(`NOOP`)

	// Another session's expunges reach the session as VANISHED, at its
	// next command; none during FETCH, which may not report them.
	plain.ok(`UID STORE 8,10 +FLAGS.SILENT (\Deleted)`)
	wantLines(t, "other session's EXPUNGE", expungeLines(plain.ok(`EXPUNGE`)), "* 2 EXPUNGE", "* 2 EXPUNGE")
	if got := expungeLines(rc.ok(`FETCH 1 (UID)`)); len(got) != 0 {
		t.Fatalf("VANISHED during FETCH: %q", got)
	}
	wantLines(t, "NOOP", expungeLines(rc.ok(`NOOP`)), "* VANISHED 8,10")
	wantLines(t, "view", rc.ok(`FETCH 1:* (UID)`),
		"* 1 FETCH (UID 6)", "* 2 FETCH (UID 11)", "* 3 FETCH (UID 12)")

	// In IDLE too.
	rc.write("i1 IDLE\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	plain.ok(`UID STORE 11 +FLAGS.SILENT (\Deleted)`)
	plain.ok(`UID EXPUNGE 11`)
	for {
		l := rc.readLine()
		if l == "* VANISHED 11" {
			break
		}
		if strings.Contains(l, "EXPUNGE") || strings.HasPrefix(l, "* VANISHED") {
			t.Fatalf("IDLE: %q", l)
		}
	}
	rc.write("DONE\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "i1 OK") {
		t.Fatalf("IDLE end: %q", l)
	}

	// A mailbox deleted under the session: every message vanishes.
	rc.ok(`SELECT Drafts`)
	plain.ok(`DELETE Drafts`)
	wantLines(t, "DELETE by another session", expungeLines(rc.ok(`NOOP`)), "* VANISHED 1")
}

// A certified stub withdrawn on release (the acknowledgement's MOVE into
// Acknowledge, made by another session) reaches a QRESYNC session as
// VANISHED of the stub, with the released message's EXISTS.
func TestQResyncVanishedRelease(t *testing.T) {
	ts, _ := newReleaseServer(t)
	ts.deliver("alice", "INBOX", simpleMessage("keep", "x"))
	stub := ts.deliver("alice", "INBOX", simpleMessage("stub", "x"))
	rc := ts.rawLogin("alice")
	rc.ok(`ENABLE QRESYNC`)
	rc.ok(`SELECT INBOX`)
	other := ts.rawLogin("alice")
	other.ok(`SELECT INBOX`)
	other.ok(`UID MOVE 2 Acknowledge`)
	if stub != 2 {
		t.Fatalf("stub UID %d", stub)
	}
	got := rc.ok(`NOOP`)
	wantLines(t, "release", got, "* VANISHED 2", "* 2 EXISTS")
	wantLines(t, "view", rc.ok(`FETCH 1:* (UID)`), "* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)")
}
