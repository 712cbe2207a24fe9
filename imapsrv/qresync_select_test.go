package imapsrv_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// qresyncBox delivers n messages to alice's INBOX and returns a raw
// session that has enabled QRESYNC, with the mailbox's UIDVALIDITY and
// HIGHESTMODSEQ as that session first saw them.
func qresyncBox(t *testing.T, ts *testServer, n int) (rc *rawClient, uidValidity, modseq uint32) {
	t.Helper()
	ts.deliverN("alice", "INBOX", n)
	rc = ts.rawLogin("alice")
	if got := rc.ok(`ENABLE QRESYNC`); !slices.Equal(got, []string{"* ENABLED QRESYNC"}) {
		t.Fatalf("ENABLE QRESYNC: %q", got)
	}
	sel := rc.ok(`SELECT INBOX`)
	return rc, codeNumber(t, sel, "UIDVALIDITY"), codeNumber(t, sel, "HIGHESTMODSEQ")
}

// changeBox makes, from another session, the changes RFC 7162 3.2.5.1's
// example resynchronises: flags of UIDs 3 and 7 changed, UIDs 2, 5 and 9
// expunged (their \Deleted changes them first: they must appear only as
// vanished). It returns the FETCH (UID FLAGS MODSEQ) lines of UIDs 3 and
// 7 as the other session then sees them.
func changeBox(t *testing.T, ts *testServer) []string {
	t.Helper()
	other := ts.rawLogin("alice")
	other.ok(`ENABLE CONDSTORE`)
	other.ok(`SELECT INBOX`)
	other.ok(`UID STORE 3 +FLAGS.SILENT (\Seen)`)
	other.ok(`UID STORE 7 +FLAGS.SILENT ($Work \Answered)`)
	other.ok(`UID STORE 2,5,9 +FLAGS.SILENT (\Deleted)`)
	other.ok(`UID EXPUNGE 2,5,9`)
	want := other.ok(`UID FETCH 3,7 (FLAGS MODSEQ)`)
	if len(want) != 2 {
		t.Fatalf("UID FETCH 3,7: %q", want)
	}
	other.ok(`LOGOUT`)
	return want
}

// The untagged responses a QRESYNC SELECT adds after the mailbox's
// others: VANISHED (EARLIER) and FETCH, in that order.
func resyncLines(t *testing.T, sel []string) []string {
	t.Helper()
	hm := -1
	for i, l := range sel {
		if strings.Contains(l, "[HIGHESTMODSEQ") {
			hm = i
		}
	}
	if hm < 0 {
		t.Fatalf("no HIGHESTMODSEQ in %q", sel)
	}
	var out []string
	for _, l := range sel[hm+1:] {
		if strings.HasPrefix(l, "* VANISHED") || strings.Contains(l, " FETCH ") {
			out = append(out, l)
		}
	}
	return out
}

// ENABLE QRESYNC (RFC 7162 3.2.3) answers ENABLED QRESYNC and implies
// CONDSTORE: SELECT reports HIGHESTMODSEQ and FETCH FLAGS carries MODSEQ.
func TestQResyncEnable(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc, _, _ := qresyncBox(t, ts, 1)
	mustContain(t, rc.ok(`FETCH 1 (FLAGS)`), "MODSEQ (")
	both := ts.rawLogin("alice")
	if got := both.ok(`ENABLE CONDSTORE QRESYNC`); !slices.Equal(got, []string{"* ENABLED CONDSTORE QRESYNC"}) {
		t.Fatalf("ENABLE CONDSTORE QRESYNC: %q", got)
	}
}

// SELECT and EXAMINE with the QRESYNC parameter, RFC 7162 3.2.5.1's
// example: after HIGHESTMODSEQ, VANISHED (EARLIER) names the known UIDs
// expunged since the client's MODSEQ and a FETCH (UID FLAGS MODSEQ)
// reports each known message changed since; with known-uids only those;
// with another UIDVALIDITY nothing.
func TestQResyncSelect(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc, uv, hm := qresyncBox(t, ts, 10)
	want := changeBox(t, ts)
	rc.ok(`NOOP`)

	for _, cmd := range []string{"SELECT", "EXAMINE"} {
		sel := rc.ok(fmt.Sprintf(`%s INBOX (QRESYNC (%d %d))`, cmd, uv, hm))
		mustContain(t, sel, "[CLOSED]")
		mustContain(t, sel, "* 7 EXISTS")
		got := resyncLines(t, sel)
		wantAll := append([]string{"* VANISHED (EARLIER) 2,5,9"}, want...)
		if !slices.Equal(got, wantAll) {
			t.Fatalf("%s (QRESYNC):\n got %q\nwant %q", cmd, got, wantAll)
		}
		if codeNumber(t, sel, "HIGHESTMODSEQ") <= hm {
			t.Fatalf("HIGHESTMODSEQ did not move: %q", sel)
		}
	}

	// known-uids (RFC 7162 3.2.5.1, "41,43:211,214:541"): only those.
	got := resyncLines(t, rc.ok(fmt.Sprintf(`SELECT INBOX (QRESYNC (%d %d 1:3,6,8))`, uv, hm)))
	if wantSome := []string{"* VANISHED (EARLIER) 2", want[0]}; !slices.Equal(got, wantSome) {
		t.Fatalf("known-uids 1:3,6,8:\n got %q\nwant %q", got, wantSome)
	}
	// Nothing changed since the current HIGHESTMODSEQ.
	now := codeNumber(t, rc.ok(`SELECT INBOX`), "HIGHESTMODSEQ")
	if got := resyncLines(t, rc.ok(fmt.Sprintf(`SELECT INBOX (QRESYNC (%d %d))`, uv, now))); len(got) != 0 {
		t.Fatalf("QRESYNC from HIGHESTMODSEQ: %q", got)
	}
	// Another UIDVALIDITY: the client's copy is void, no resync data,
	// but the SELECT succeeds and reports HIGHESTMODSEQ.
	sel := rc.ok(fmt.Sprintf(`SELECT INBOX (QRESYNC (%d %d))`, uv+1, hm))
	if got := resyncLines(t, sel); len(got) != 0 {
		t.Fatalf("QRESYNC with another UIDVALIDITY: %q", got)
	}
	// The session goes on in the mailbox, sequence numbers as reported.
	if got := rc.ok(`FETCH 2 (UID)`); !slices.Equal(got, []string{"* 2 FETCH (UID 3)"}) {
		t.Fatalf("FETCH 2 after the resync: %q", got)
	}
}

// The QRESYNC parameter is BAD without ENABLE QRESYNC first (RFC 7162
// 3.2.5; ENABLE CONDSTORE is not enough), and when malformed.
func TestQResyncSelectBad(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.fail("BAD", `SELECT INBOX (QRESYNC (1 1))`)
	rc.ok(`ENABLE CONDSTORE`)
	rc.fail("BAD", `SELECT INBOX (QRESYNC (1 1))`)
	rc.ok(`ENABLE QRESYNC`)
	for _, bad := range []string{
		`SELECT INBOX (QRESYNC)`,
		`SELECT INBOX (QRESYNC ())`,
		`SELECT INBOX (QRESYNC (1))`,
		`SELECT INBOX (QRESYNC (0 1))`,
		`SELECT INBOX (QRESYNC (1 x))`,
		`SELECT INBOX (QRESYNC (1 1 x))`,
		`SELECT INBOX (QRESYNC (1 1 1:5 (1:2 3)))`,
		`SELECT INBOX (QRESYNC (1 1 1:5 (1:2 3:4) 7))`,
		`SELECT INBOX (QRESYNC (1 1 1:5 (1:* 3:4)))`,
		`SELECT INBOX (QRESYNC (1 1 $))`,
		`EXAMINE INBOX (QRESYNC (1 1) QRESYNC)`,
	} {
		rejects(t, rc, bad)
	}
	rc.ok(`SELECT INBOX (QRESYNC (1 1 1:5 (1:2 3:4)))`)
	rc.ok(`SELECT INBOX (QRESYNC (1 1 (1:2 3:4)))`)
	rc.ok(`SELECT INBOX (CONDSTORE QRESYNC (1 1))`)
}

// A client asking from a MODSEQ older than the expunges the store keeps
// gets every UID not present, a correct superset (RFC 7162 3.2.5.2),
// narrowed by its seq-match-data: if message n still has the UID the
// client gives it, nothing below that UID was expunged.
func TestQResyncSelectBeyondRetention(t *testing.T) {
	ts := newTestServerRetention(t, 2)
	ts.addUser("alice")
	rc, uv, hm := qresyncBox(t, ts, 12)
	rc.ok(`LOGOUT`)
	other := ts.rawLogin("alice")
	other.ok(`SELECT INBOX`)
	// 8 expunges, one at a time: the store keeps the last two or so.
	for _, uid := range []int{2, 3, 4, 5, 6, 7, 10, 11} {
		other.ok(fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, uid))
		other.ok(fmt.Sprintf(`UID EXPUNGE %d`, uid))
	}
	// UIDs 13:14 added and expunged: never known to the client.
	ts.deliverN("alice", "INBOX", 2)
	other.ok(`UID STORE 13:14 +FLAGS.SILENT (\Deleted)`)
	other.ok(`UID EXPUNGE 13:14`)

	rc = ts.rawLogin("alice")
	rc.ok(`ENABLE QRESYNC`)
	got := resyncLines(t, rc.ok(fmt.Sprintf(`SELECT INBOX (QRESYNC (%d %d 1:12))`, uv, hm)))
	if want := []string{"* VANISHED (EARLIER) 2:7,10:11"}; !slices.Equal(got, want) {
		t.Fatalf("beyond retention:\n got %q\nwant %q", got, want)
	}
	// The client's seq 1 = UID 1 still holds, seq 8 = UID 8 does not
	// (UID 8 is now message 2): only what lies above UID 1 is in doubt.
	// With seq 2 = UID 8 from a client that knew the expunges below 8,
	// only UIDs above 8 are.
	got = resyncLines(t, rc.ok(fmt.Sprintf(`SELECT INBOX (QRESYNC (%d %d 1:12 (1,8 1,8)))`, uv, hm)))
	if want := []string{"* VANISHED (EARLIER) 2:7,10:11"}; !slices.Equal(got, want) {
		t.Fatalf("seq-match 1,8 1,8:\n got %q\nwant %q", got, want)
	}
	got = resyncLines(t, rc.ok(fmt.Sprintf(`SELECT INBOX (QRESYNC (%d %d 1:12 (1:2 1,8)))`, uv, hm)))
	if want := []string{"* VANISHED (EARLIER) 10:11"}; !slices.Equal(got, want) {
		t.Fatalf("seq-match 1:2 1,8:\n got %q\nwant %q", got, want)
	}
	// An exact answer ignores seq-match-data: from a recent MODSEQ the
	// log has every expunge.
	recent := codeNumber(t, rc.ok(`SELECT INBOX`), "HIGHESTMODSEQ")
	if got := resyncLines(t, rc.ok(fmt.Sprintf(`SELECT INBOX (QRESYNC (%d %d 1:20 (1:2 1,8)))`, uv, recent))); len(got) != 0 {
		t.Fatalf("from HIGHESTMODSEQ: %q", got)
	}
}

// RFC 7162 3.2.11: a SELECT or EXAMINE that replaces a selected mailbox
// answers OK [CLOSED] first, the boundary between the responses about
// the old mailbox and the new; changes to the old mailbox made before the
// SELECT are reported before it (as VANISHED once QRESYNC is enabled),
// nothing about it after. A SELECT from the authenticated state has no
// [CLOSED].
func TestQResyncClosed(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc, uv, hm := qresyncBox(t, ts, 3)
	other := ts.rawLogin("alice")
	other.ok(`SELECT INBOX`)
	other.ok(`UID STORE 2 +FLAGS.SILENT (\Deleted)`)
	other.ok(`UID EXPUNGE 2`)

	sel := rc.ok(fmt.Sprintf(`SELECT INBOX (QRESYNC (%d %d))`, uv, hm))
	closed := slices.IndexFunc(sel, func(l string) bool { return strings.HasPrefix(l, "* OK [CLOSED]") })
	if closed != 0 {
		t.Fatalf("[CLOSED] not first: %q", sel)
	}
	if got := resyncLines(t, sel); !slices.Equal(got, []string{"* VANISHED (EARLIER) 2"}) {
		t.Fatalf("resync: %q", got)
	}
	rc.ok(`UNSELECT`)
	mustNotContain(t, rc.ok(`EXAMINE Drafts`), "[CLOSED]")
	mustContain(t, rc.ok(`SELECT INBOX`), "[CLOSED]")
}
