package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"

	"certmail/imapsrv"
	"certmail/mailbox"
)

// sortMsg builds a message for SORT and THREAD tests; an empty field is
// left out.
type sortMsg struct {
	from, to, cc, subject, date, id, refs, inReplyTo, body string
}

func (m sortMsg) raw() string {
	var b strings.Builder
	for _, f := range [][2]string{{"From", m.from}, {"To", m.to}, {"Cc", m.cc}, {"Subject", m.subject},
		{"Date", m.date}, {"Message-ID", m.id}, {"References", m.refs}, {"In-Reply-To", m.inReplyTo}} {
		if f[1] != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
		}
	}
	b.WriteString("\r\n" + m.body + "\r\n")
	return b.String()
}

// sortLine runs cmd and returns its one untagged answer starting with
// want ("* SORT" or "* THREAD").
func sortLine(t *testing.T, rc *rawClient, cmd, want string) string {
	t.Helper()
	lines := grep(rc.ok(cmd), want)
	if len(lines) != 1 {
		t.Fatalf("%s: %d %q lines", cmd, len(lines), want)
	}
	return lines[0]
}

func sortFixture(t *testing.T) (*testServer, *rawClient) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for _, m := range []sortMsg{
		// 1
		{from: `"Zed Zulu" <zed@example.org>`, to: "carol@example.org", cc: "x@example.org",
			subject: "Re: [list] Budget (fwd)", date: "Tue, 03 Jan 2006 10:00:00 +0000", body: strings.Repeat("b", 300)},
		// 2
		{from: "adam@example.org", to: `"Yves" <b@example.org>`, subject: "apples",
			date: "Mon, 02 Jan 2006 10:00:00 +0000", body: "x"},
		// 3: no Date: sorts by its internal date (now, the latest)
		{from: `"Bert" <mike@example.org>`, to: "ann@example.org", cc: "a@example.org", subject: "=?utf-8?q?Fwd:_budget?=",
			body: strings.Repeat("c", 100)},
		// 4: a date with a zone, before 2 in UTC
		{from: "Lena <lena@example.org>", subject: "[fwd: Re: Zebra]", date: "Mon, 02 Jan 2006 11:00:00 +0500", body: strings.Repeat("d", 50)},
	} {
		ts.deliver("alice", "INBOX", m.raw())
	}
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	return ts, rc
}

// TestSort: SORT and UID SORT (RFC 5256 section 3) by each key, REVERSE,
// several keys, with a search program; SORT=DISPLAY's keys (RFC 5957).
func TestSort(t *testing.T) {
	_, rc := sortFixture(t)
	for _, tc := range []struct{ cmd, want string }{
		// base subjects: budget, apples, budget, zebra; ties by number
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 2 1 3 4"},
		{"SORT (REVERSE SUBJECT) UTF-8 ALL", "* SORT 4 1 3 2"},
		{"SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "* SORT 2 3 1 4"},
		{"SORT (DATE) UTF-8 ALL", "* SORT 4 2 1 3"},
		// delivered within a second: equal internal dates keep mailbox order
		{"SORT (ARRIVAL) UTF-8 ALL", "* SORT 1 2 3 4"},
		{"SORT (SIZE) UTF-8 ALL", "* SORT 2 4 3 1"},
		{"SORT (FROM) US-ASCII ALL", "* SORT 2 4 3 1"},
		{"SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 2 3 4 1"},
		{"SORT (TO) UTF-8 ALL", "* SORT 4 3 2 1"},
		{"SORT (DISPLAYTO) UTF-8 ALL", "* SORT 4 3 1 2"},
		{"SORT (CC) UTF-8 ALL", "* SORT 2 4 3 1"},
		{"SORT (REVERSE SUBJECT) UTF-8 OR FROM lena FROM adam", "* SORT 4 2"},
		{"SORT (SUBJECT) UTF-8 SUBJECT nothing-like-it", "* SORT"},
		{"UID SORT (REVERSE SIZE) UTF-8 2:4", "* SORT 3 4 2"},
	} {
		if got := sortLine(t, rc, tc.cmd, "* SORT"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	for _, bad := range []string{"SORT SUBJECT UTF-8 ALL", "SORT (BOGUS) UTF-8 ALL", "SORT () UTF-8 ALL",
		"SORT (SUBJECT) UTF-8", "SORT (REVERSE) UTF-8 ALL"} {
		rejects(t, rc, bad)
	}
	if st := rc.fail("NO", "SORT (SUBJECT) KOI8-R ALL"); !strings.Contains(st, "[BADCHARSET]") {
		t.Errorf("unknown charset: %q", st)
	}
}

// TestSortNeedsSelect: SORT and THREAD outside the selected state are
// refused.
func TestSortNeedsSelect(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	for _, cmd := range []string{"SORT (SUBJECT) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL"} {
		if _, st := rc.cmd(cmd); strings.Contains(st, "OK") {
			t.Errorf("%s without a mailbox: %q", cmd, st)
		}
	}
}

// TestSortLegacySummary: a message stored before sort keys were kept
// with the summary sorts the same, from its header read at SORT time.
func TestSortLegacySummary(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for _, subj := range []string{"charlie", "alpha", "bravo"} {
		raw := []byte(sortMsg{from: "a@example.org", subject: "Re: " + subj, date: "Mon, 02 Jan 2006 10:00:00 +0000"}.raw())
		if err := ts.store.Update(func(tx *mailbox.Tx) error {
			blob, err := tx.PutBlobSummary(raw, imapsrv.LegacySummarize(raw))
			if err != nil {
				return err
			}
			_, err = tx.AppendBlob("alice", "INBOX", blob, mailbox.AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	ts.deliver("alice", "INBOX", sortMsg{subject: "aardvark"}.raw())
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	if got := sortLine(t, rc, "SORT (SUBJECT) UTF-8 ALL", "* SORT"); got != "* SORT 4 2 3 1" {
		t.Errorf("SORT (SUBJECT) with legacy summaries: %q", got)
	}
	// FETCH still reads those summaries.
	mustContain(t, rc.ok("FETCH 1 ENVELOPE"), `"Re: charlie"`)
	mustContain(t, rc.ok("FETCH 4 ENVELOPE"), `"aardvark"`)
}

// TestSortKeysV1Recomputed: sort keys stored as version 1 ("\x00S1",
// folded to lower case, so "[" sorted before letters against RFC 5256's
// i;ascii-casemap) are computed again from the header, and FETCH still
// reads the summary behind them.
func TestSortKeysV1Recomputed(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for _, subj := range []string{"[xyz]", "a", "_"} {
		raw := []byte(sortMsg{from: "a@example.org", subject: subj}.raw())
		if err := ts.store.Update(func(tx *mailbox.Tx) error {
			blob, err := tx.PutBlobSummary(raw, imapsrv.SummarizeV1(raw))
			if err != nil {
				return err
			}
			_, err = tx.AppendBlob("alice", "INBOX", blob, mailbox.AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	if got := sortLine(t, rc, "SORT (SUBJECT) US-ASCII ALL", "* SORT"); got != "* SORT 2 1 3" {
		t.Errorf("SORT (SUBJECT) over version 1 keys: %q, want \"* SORT 2 1 3\"", got)
	}
	mustContain(t, rc.ok("FETCH 1 ENVELOPE"), `"[xyz]"`)
}

// TestSortStubRevealsNothing: a certified item's stub sorts and threads by
// its own headers and size; the held message (stored as a blob beside it,
// as delivery stores it until the COD) is never what orders it.
func TestSortStubRevealsNothing(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	held := sortMsg{from: `"Aaron Aardvark" <aaa@example.org>`, to: "aaa@example.org", cc: "aaa@example.org",
		subject: "AAA secret contract", date: "Sun, 01 Jan 2006 00:00:00 +0000", id: "<held@example.org>",
		body: strings.Repeat("secret ", 5000)}.raw()
	if err := ts.store.Update(func(tx *mailbox.Tx) error {
		_, err := tx.PutBlobSummary([]byte(held), imapsrv.Summarize([]byte(held)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// 1: the stub, its own small headers only
	ts.deliver("alice", "INBOX", sortMsg{from: `"certmail" <postmaster@mail.example.org>`, to: "zoe@example.org",
		subject: "Certified mail for you", date: "Fri, 06 Jan 2006 00:00:00 +0000", id: "<stub@mail.example.org>", body: "short"}.raw())
	// 2: an ordinary message
	ts.deliver("alice", "INBOX", sortMsg{from: `"Bob" <bob@example.org>`, to: "bob@example.org", cc: "bob@example.org",
		subject: "Budget", date: "Thu, 05 Jan 2006 00:00:00 +0000", id: "<b@example.org>",
		inReplyTo: "<held@example.org>", body: strings.Repeat("x", 2000)}.raw())
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	for _, tc := range []struct{ cmd, want string }{
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 2 1"},
		{"SORT (DATE) UTF-8 ALL", "* SORT 2 1"},
		{"SORT (SIZE) UTF-8 ALL", "* SORT 1 2"},
		{"SORT (FROM) UTF-8 ALL", "* SORT 2 1"},
		{"SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 2 1"},
		{"SORT (TO) UTF-8 ALL", "* SORT 2 1"},
		{"SORT (CC) UTF-8 ALL", "* SORT 1 2"},
		{"THREAD REFERENCES UTF-8 ALL", "* THREAD (2)(1)"},
		{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (2)(1)"},
	} {
		want := strings.Fields(tc.cmd)[0]
		if got := sortLine(t, rc, tc.cmd, "* "+want); got != tc.want {
			t.Errorf("%s: %q, want %q (as the stub's own headers order it)", tc.cmd, got, tc.want)
		}
	}
}
