package imapsrv_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestPartialSearch: SEARCH RETURN (PARTIAL) (RFC 5267 section 4.4, with
// RFC 9394's ranges from the end): the window of the result in mailbox
// order, the range written low:high as asked, NIL past the end; with
// COUNT and MIN beside it; BAD for what the grammar refuses (one bound,
// "*", zero, mixed signs, PARTIAL with ALL or twice). The cases of
// imaptest's search-partial group come first.
func TestPartialSearch(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 6)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	rc.ok("UID STORE 2 +FLAGS (\\Deleted)")
	rc.ok("EXPUNGE") // UIDs 1,3,4,5,6 are messages 1 to 5
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH RETURN (PARTIAL 1:1) ALL", "PARTIAL (1:1 1)"},
		{"SEARCH RETURN (PARTIAL 2:4) ALL", "PARTIAL (2:4 2:4)"},
		{"SEARCH RETURN (PARTIAL 4:2) ALL", "PARTIAL (2:4 2:4)"},
		{"SEARCH RETURN (PARTIAL 1:6) ALL", "PARTIAL (1:6 1:5)"},
		{"SEARCH RETURN (PARTIAL 6:6) ALL", "PARTIAL (6:6 NIL)"},
		{"SEARCH RETURN (PARTIAL 1:3) 1:2,4:5", "PARTIAL (1:3 1:2,4)"},
		{"SEARCH RETURN (PARTIAL 2:3) 1:2,4:5", "PARTIAL (2:3 2,4)"},
		{"SEARCH RETURN (PARTIAL 2:10) 1:2,4:5", "PARTIAL (2:10 2,4:5)"},
		{"UID SEARCH RETURN (PARTIAL 2:2) ALL", "UID PARTIAL (2:2 3)"},
		{"UID SEARCH RETURN (PARTIAL 5:10) ALL", "UID PARTIAL (5:10 6)"},
		{"UID SEARCH RETURN (PARTIAL 6:10) ALL", "UID PARTIAL (6:10 NIL)"},
		// RFC 9394: from the end.
		{"SEARCH RETURN (PARTIAL -1:-2) ALL", "PARTIAL (-1:-2 4:5)"},
		{"UID SEARCH RETURN (PARTIAL -2:-1) 1:2,4:5", "UID PARTIAL (-1:-2 5:6)"},
		{"SEARCH RETURN (PARTIAL -5:-9) ALL", "PARTIAL (-5:-9 1)"},
		{"SEARCH RETURN (PARTIAL -6:-9) ALL", "PARTIAL (-6:-9 NIL)"},
		// Beside other return options; UPDATE alone implies no ALL.
		{"SEARCH RETURN (COUNT PARTIAL 2:3 MIN) 2:5", "MIN 2 COUNT 4 PARTIAL (2:3 3:4)"},
		{"SEARCH RETURN (PARTIAL 1:9) SUBJECT nothing-like-it", "PARTIAL (1:9 NIL)"},
		{"SEARCH RETURN (CONTEXT) 2", "ALL 2"},
	} {
		l := mustContain(t, rc.ok(tc.cmd), "* ESEARCH")
		if _, got, _ := strings.Cut(l, ") "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, l, tc.want)
		}
	}
	for _, bad := range []string{
		"SEARCH RETURN (PARTIAL 1) ALL", "SEARCH RETURN (PARTIAL 1:*) ALL", "SEARCH RETURN (PARTIAL *:1) ALL",
		"SEARCH RETURN (PARTIAL 0:3) ALL", "SEARCH RETURN (PARTIAL -1:3) ALL", "SEARCH RETURN (PARTIAL 1:-3) ALL",
		"SEARCH RETURN (PARTIAL) ALL", "SEARCH RETURN (PARTIAL 1:2 ALL) ALL", "SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL",
		"SEARCH RETURN (PARTIAL 1:99999999999) ALL", "SEARCH RETURN (PARTIAL 01:2) ALL", "SEARCH RETURN (PARTIAL --1:-2) ALL",
	} {
		rejects(t, rc, bad)
	}
}

// TestPartialSort: SORT RETURN (PARTIAL) (RFC 5267 section 4.4 for
// CONTEXT=SORT): the window is of the sorted result, written in sort order
// (ranges only where numbers ascend); imaptest's sort-partial cases, and
// from the end.
func TestPartialSort(t *testing.T) {
	_, rc := sortFixture(t) // SUBJECT order 2,1,3,4; REVERSE DATE 3,1,2,4
	for _, tc := range []struct{ cmd, want string }{
		{"SORT RETURN (PARTIAL 1:1) (SUBJECT) UTF-8 ALL", "PARTIAL (1:1 2)"},
		{"SORT RETURN (PARTIAL 2:4) (SUBJECT) UTF-8 ALL", "PARTIAL (2:4 1,3:4)"},
		{"SORT RETURN (PARTIAL 4:2) (REVERSE DATE) UTF-8 ALL", "PARTIAL (2:4 1:2,4)"},
		{"SORT RETURN (PARTIAL 1:6) (REVERSE DATE) UTF-8 ALL", "PARTIAL (1:6 3,1:2,4)"},
		{"SORT RETURN (PARTIAL 5:6) (REVERSE DATE) UTF-8 ALL", "PARTIAL (5:6 NIL)"},
		{"UID SORT RETURN (PARTIAL -1:-2) (SUBJECT) UTF-8 ALL", "UID PARTIAL (-1:-2 3:4)"},
		{"SORT RETURN (MIN PARTIAL 1:2 COUNT) (SUBJECT) UTF-8 ALL", "MIN 2 COUNT 4 PARTIAL (1:2 2,1)"},
	} {
		l := mustContain(t, rc.ok(tc.cmd), "* ESEARCH")
		if _, got, _ := strings.Cut(l, ") "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, l, tc.want)
		}
	}
	for _, bad := range []string{
		"SORT RETURN (PARTIAL 1) (ARRIVAL) UTF-8 ALL", "SORT RETURN (PARTIAL 1:*) (ARRIVAL) UTF-8 ALL",
		"SORT RETURN (PARTIAL *:1) (ARRIVAL) UTF-8 ALL", "SORT RETURN (ALL PARTIAL 1:2) (ARRIVAL) UTF-8 ALL",
	} {
		rejects(t, rc, bad)
	}
}

// TestPartialSave: RETURN (SAVE PARTIAL) keeps as $ what PARTIAL returned,
// with MIN's and MAX's messages when asked for; with COUNT, every message
// found (RFC 9394 section 3.2, which applies with CONTEXT=SEARCH too); the
// PARTIAL is answered either way. For SORT the window is in sort order.
func TestPartialSave(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 6)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	saved := func() string {
		t.Helper()
		return mustContain(t, rc.ok("UID SEARCH $"), "* SEARCH")
	}
	for _, tc := range []struct{ cmd, answer, saved string }{
		{"SEARCH RETURN (SAVE PARTIAL 2:3) ALL", "PARTIAL (2:3 2:3)", "* SEARCH 2 3"},
		{"SEARCH RETURN (SAVE PARTIAL -1:-2 MIN) 2:6", "MIN 2 PARTIAL (-1:-2 5:6)", "* SEARCH 2 5 6"},
		{"SEARCH RETURN (SAVE MAX PARTIAL 1:1) 2:5", "MAX 5 PARTIAL (1:1 2)", "* SEARCH 2 5"},
		{"SEARCH RETURN (SAVE COUNT PARTIAL 1:1) 2:5", "COUNT 4 PARTIAL (1:1 2)", "* SEARCH 2 3 4 5"},
		{"SEARCH RETURN (SAVE PARTIAL 7:9) ALL", "PARTIAL (7:9 NIL)", "* SEARCH"},
		// deliverN's subjects "message 1".."message 6": REVERSE SUBJECT is 6..1.
		{"SORT RETURN (SAVE PARTIAL 1:2) (REVERSE SUBJECT) UTF-8 ALL", "PARTIAL (1:2 6,5)", "* SEARCH 5 6"},
		{"SORT RETURN (SAVE PARTIAL 2:3 MAX) (REVERSE SUBJECT) UTF-8 ALL", "MAX 1 PARTIAL (2:3 5,4)", "* SEARCH 1 4 5"},
	} {
		l := mustContain(t, rc.ok(tc.cmd), "* ESEARCH")
		if _, got, _ := strings.Cut(l, ") "); got != tc.answer {
			t.Errorf("%s: %q, want %q", tc.cmd, l, tc.answer)
		}
		if got := saved(); got != tc.saved {
			t.Errorf("%s: $ is %q, want %q", tc.cmd, got, tc.saved)
		}
	}
}

// TestPartialUIDFetch: UID FETCH's PARTIAL modifier (RFC 9394 section
// 3.3) fetches only the messages of the set at the range's positions,
// from the last for a negative range; with CHANGEDSINCE, among the changed
// ones; only in UID FETCH, once; PARTIAL in CAPABILITY.
func TestPartialUIDFetch(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 6)
	rc := ts.rawLogin("alice")
	if !capsOf(t, rc.ok("CAPABILITY"))["PARTIAL"] {
		t.Fatal("PARTIAL not advertised")
	}
	rc.ok("SELECT INBOX")
	rc.ok("UID STORE 2 +FLAGS (\\Deleted)")
	rc.ok("EXPUNGE") // UIDs 1, 3, 4, 5, 6
	uidRE := regexp.MustCompile(`FETCH \(.*UID (\d+)`)
	uids := func(lines []string) string {
		var out []string
		for _, l := range lines {
			if m := uidRE.FindStringSubmatch(l); m != nil {
				out = append(out, m[1])
			}
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct{ cmd, want string }{
		{"UID FETCH 1:* (UID FLAGS) (PARTIAL -1:-3)", "4 5 6"},
		{"UID FETCH 1:* (UID) (PARTIAL 1:2)", "1 3"},
		{"UID FETCH 1:* (UID) (PARTIAL 2:1)", "1 3"},
		{"UID FETCH 3:5 (UID) (PARTIAL 2:9)", "4 5"},
		{"UID FETCH 3:4 (UID) (PARTIAL 5:9)", ""},
		{"UID FETCH 25900:26600 (UID FLAGS) (PARTIAL -1:-3)", ""}, // RFC 9394's example, on UIDs that are not here
	} {
		if got := uids(rc.ok(tc.cmd)); got != tc.want {
			t.Errorf("%s: UIDs %q, want %q", tc.cmd, got, tc.want)
		}
	}
	m := regexp.MustCompile(`MODSEQ \((\d+)\)`).FindStringSubmatch(mustContain(t, rc.ok("UID FETCH 6 (MODSEQ)"), "FETCH"))
	rc.ok("UID STORE 3,5,6 +FLAGS (\\Flagged)")
	if got := uids(rc.ok("UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE " + m[1] + " PARTIAL 1:2)")); got != "3 5" {
		t.Errorf("CHANGEDSINCE with PARTIAL 1:2: UIDs %q, want 3 5", got)
	}
	for _, bad := range []string{"FETCH 1:* (UID) (PARTIAL 1:2)", "UID FETCH 1:* (UID) (PARTIAL 1:*)", "UID FETCH 1:* (UID) (PARTIAL 0:1)",
		"UID FETCH 1:* (UID) (PARTIAL 1:2 PARTIAL 3:4)", "UID FETCH 1:* (UID) (PARTIAL)"} {
		rejects(t, rc, bad)
	}
}
