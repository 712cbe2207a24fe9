package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// searchMailbox fills INBOX with five messages of known flags, dates,
// sizes, headers and bodies, and returns a raw client with it selected.
//
//	1 Lunch plans    alice -> bob        sent 2024-01-01  internal 2024-01-02  \Seen \Answered
//	2 Budget report  carol -> dave, cc erin, bcc frank  2024-02-15 / 2024-02-15  \Flagged $Work, 5 kB
//	3 multipart.eml  (sent 2024-03-05 09:30 +0100)      internal 2024-03-05  \Seen
//	4 encoded.eml    (sent 2024-03-06)                  internal 2024-03-06  (none)
//	5 Draft notes    X-Priority: 1                      internal 2024-04-01  \Deleted \Draft $Later
func searchMailbox(t *testing.T) (*testServer, *rawClient) {
	t.Helper()
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	add := func(flags, date, msg string) {
		t.Helper()
		if _, st := rc.appendRaw(fmt.Sprintf(`INBOX (%s) "%s"`, flags, date), msg); !strings.HasPrefix(st, "OK") {
			t.Fatalf("APPEND: %q", st)
		}
	}
	add(`\Seen \Answered`, "02-Jan-2024 10:00:00 +0000",
		"From: Alice Example <alice@example.org>\r\nTo: bob@example.org\r\nSubject: Lunch plans\r\n"+
			"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\nMessage-ID: <lunch@example.org>\r\n\r\nShall we have pizza today?\r\n")
	add(`\Flagged $Work`, "15-Feb-2024 08:00:00 +0000",
		"From: Carol <carol@example.net>\r\nTo: Dave <dave@example.org>\r\nCc: erin@example.org\r\nBcc: frank@example.org\r\n"+
			"Subject: Budget report\r\nDate: Thu, 15 Feb 2024 07:59:00 +0000\r\n\r\n"+strings.Repeat("numbers and more numbers\r\n", 200))
	add(`\Seen`, "05-Mar-2024 09:31:00 +0100", readFixture(t, "multipart.eml"))
	add(``, "06-Mar-2024 12:00:00 +0000", readFixture(t, "encoded.eml"))
	add(`\Deleted \Draft $Later`, "01-Apr-2024 00:30:00 +0000",
		"From: alice@example.org\r\nSubject: Draft notes\r\nX-Priority: 1\r\nDate: Mon, 01 Apr 2024 00:30:00 +0000\r\n\r\nnot finished\r\n")
	rc.ok(`SELECT INBOX`)
	return ts, rc
}

// search runs SEARCH and returns the numbers of the "* SEARCH" response.
func search(t *testing.T, rc *rawClient, criteria string) string {
	t.Helper()
	untagged := rc.ok("SEARCH " + criteria)
	l := mustContain(t, untagged, "* SEARCH")
	return strings.TrimSpace(strings.TrimPrefix(l, "* SEARCH"))
}

func TestSearchCriteria(t *testing.T) {
	_, rc := searchMailbox(t)
	cases := []struct{ criteria, want string }{
		{`ALL`, "1 2 3 4 5"},
		// Sequence and UID sets.
		{`2:4`, "2 3 4"},
		{`*`, "5"},
		{`1,5`, "1 5"},
		{`4:*`, "4 5"},
		{`UID 2,4`, "2 4"},
		{`UID 3:*`, "3 4 5"},
		{`UID 99`, ""},
		{`1:2 UID 2:3`, "2"},
		// Flags.
		{`ANSWERED`, "1"},
		{`UNANSWERED`, "2 3 4 5"},
		{`DELETED`, "5"},
		{`UNDELETED`, "1 2 3 4"},
		{`DRAFT`, "5"},
		{`UNDRAFT`, "1 2 3 4"},
		{`FLAGGED`, "2"},
		{`UNFLAGGED`, "1 3 4 5"},
		{`SEEN`, "1 3"},
		{`UNSEEN`, "2 4 5"},
		{`seen`, "1 3"},
		{`KEYWORD $Work`, "2"},
		{`KEYWORD $work`, "2"},
		{`KEYWORD $Nothing`, ""},
		{`UNKEYWORD $Work`, "1 3 4 5"},
		{`KEYWORD $Later DELETED`, "5"},
		// IMAP4rev1's RECENT, NEW and OLD: this session is the first to
		// select the mailbox since the messages arrived, so all are
		// recent to it (recent_test.go has more).
		{`RECENT`, "1 2 3 4 5"},
		{`NEW`, "2 4 5"},
		{`OLD`, ""},
		// Internal date (the date only).
		{`BEFORE 15-Feb-2024`, "1"},
		{`ON 15-Feb-2024`, "2"},
		{`SINCE 15-Feb-2024`, "2 3 4 5"},
		{`SINCE 1-Jan-2025`, ""},
		{`ON 05-Mar-2024`, "3"},
		{`BEFORE 1-Jan-2024`, ""},
		// Date: header (its own date, whatever the time zone).
		{`SENTBEFORE 2-Jan-2024`, "1"},
		{`SENTON 1-Jan-2024`, "1"},
		{`SENTON 5-Mar-2024`, "3"},
		{`SENTSINCE 5-Mar-2024`, "3 4 5"},
		{`SENTSINCE 6-Mar-2024 SENTBEFORE 1-Apr-2024`, "4"},
		// Addresses, subject, any header: substrings, case-insensitive,
		// encoded words decoded.
		{`FROM alice`, "1 5"},
		{`FROM "Alice Example"`, "1"},
		{`FROM "Carol Sender"`, "3"},
		{`FROM example.net`, "2 3"},
		{`TO dave`, "2 3"},
		{`TO bob@example.org`, "1 3 4"},
		{`CC erin`, "2 3"},
		{`BCC frank`, "2 3"},
		{`SUBJECT lunch`, "1"},
		{`SUBJECT "budget REPORT"`, "2"},
		{`SUBJECT "réport"`, "3"},
		{`SUBJECT "München"`, "4"},
		{`SUBJECT nothing-like-this`, ""},
		{`HEADER X-Priority 1`, "5"},
		{`HEADER X-Priority ""`, "5"},
		{`HEADER Message-ID lunch`, "1"},
		{`HEADER In-Reply-To earlier`, "3"},
		{`HEADER X-Missing ""`, ""},
		// Body and text.
		{`BODY pizza`, "1"},
		{`BODY PIZZA`, "1"},
		{`BODY numbers`, "2"},
		{`BODY lunch`, ""},
		{`TEXT lunch`, "1"},
		{`TEXT pizza`, "1"},
		{`TEXT carol`, "2 3"},
		{`BODY pineapple`, "3"},
		{`BODY kumquat`, "3"},
		// A base64 part, a quoted-printable part (with a soft line break
		// inside the phrase), an ISO-8859-1 part.
		{`BODY avocado`, "4"},
		{`BODY papaya`, "4"},
		{`BODY "long line"`, "4"},
		{`BODY "crème"`, "4"},
		{`BODY "BRÛLÉE"`, "4"},
		{`BODY "Straße"`, "4"},
		{`TEXT "schöne"`, "4"},
		{`TEXT "Grüße"`, "4"},
		// Sizes.
		{`LARGER 4000`, "2"},
		{`SMALLER 400`, "1 5"},
		{`LARGER 100 SMALLER 1000`, "1 4 5"},
		// NOT, OR, nesting, implicit AND.
		{`NOT SEEN`, "2 4 5"},
		{`NOT NOT SEEN`, "1 3"},
		{`OR FLAGGED DELETED`, "2 5"},
		{`OR SEEN FLAGGED UNDELETED`, "1 2 3"},
		{`OR (FROM alice SUBJECT budget) KEYWORD $Work`, "2"},
		{`OR (FROM alice SUBJECT lunch) BODY avocado`, "1 4"},
		{`NOT OR SEEN FLAGGED`, "4 5"},
		{`OR OR ANSWERED DRAFT FLAGGED`, "1 2 5"},
		{`(SEEN) (SINCE 1-Mar-2024)`, "3"},
		{`NOT (FROM alice OR SEEN FLAGGED)`, "2 3 4 5"},
		{`UNSEEN NOT DELETED SINCE 1-Feb-2024`, "2 4"},
		{`CHARSET UTF-8 BODY "crème"`, "4"},
		{`CHARSET US-ASCII ALL`, "1 2 3 4 5"},
	}
	for _, c := range cases {
		if got := search(t, rc, c.criteria); got != c.want {
			t.Errorf("SEARCH %s = %q, want %q", c.criteria, got, c.want)
		}
	}

	// UID SEARCH answers with UIDs.
	rc.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	rc.ok(`EXPUNGE`)
	if got := strings.TrimPrefix(rc.ok(`UID SEARCH SEEN`)[0], "* SEARCH"); got != " 3" {
		t.Errorf("UID SEARCH SEEN = %q", got)
	}
	if got := search(t, rc, `SEEN`); got != "2" {
		t.Errorf("SEARCH SEEN after expunge = %q", got)
	}
	if got := strings.TrimPrefix(rc.ok(`uid search uid 1:*`)[0], "* SEARCH"); got != " 2 3 4" {
		t.Errorf("UID SEARCH UID 1:* = %q", got)
	}

	// Bad criteria are BAD, and the connection survives.
	rejects(t, rc, `SEARCH BOGUS`)
	rejects(t, rc, `SEARCH OR SEEN`)
	rejects(t, rc, `SEARCH BEFORE notadate`)
	rejects(t, rc, `SEARCH LARGER x`)
	rejects(t, rc, `SEARCH (SEEN`)
	rc.fail("NO [BADCHARSET]", `SEARCH CHARSET KOI8-R ALL`)
	rc.alive()
}

func TestSearchLiteral(t *testing.T) {
	_, rc := searchMailbox(t)
	// A UTF-8 search string in a literal, as IMAP4rev1 clients send it.
	word := "crème"
	rc.write(fmt.Sprintf("l1 SEARCH CHARSET UTF-8 BODY {%d+}\r\n%s\r\n", len(word), word))
	untagged, st := rc.readUntilTagged("l1")
	if !strings.HasPrefix(st, "OK") || len(untagged) != 1 || untagged[0] != "* SEARCH 4" {
		t.Errorf("SEARCH with a literal: %q %q", untagged, st)
	}
	rc.write(fmt.Sprintf("l2 SEARCH SUBJECT {%d}\r\n", len("München")))
	if l := rc.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	rc.write("München\r\n")
	untagged, st = rc.readUntilTagged("l2")
	if !strings.HasPrefix(st, "OK") || len(untagged) != 1 || untagged[0] != "* SEARCH 4" {
		t.Errorf("SEARCH with a sync literal: %q %q", untagged, st)
	}
}

func TestESearch(t *testing.T) {
	_, rc := searchMailbox(t)
	esearch := func(cmd string) string {
		t.Helper()
		tag := rc.nextTag()
		rc.write(tag + " " + cmd + "\r\n")
		untagged, st := rc.readUntilTagged(tag)
		if !strings.HasPrefix(st, "OK") {
			t.Fatalf("%s: %q", cmd, st)
		}
		l := mustContain(t, untagged, "* ESEARCH")
		want := fmt.Sprintf(`* ESEARCH (TAG "%s")`, tag)
		if !strings.HasPrefix(l, want) {
			t.Errorf("%s: %q lacks %q", cmd, l, want)
		}
		return strings.TrimSpace(strings.TrimPrefix(l, want))
	}
	check := func(cmd string, want ...string) {
		t.Helper()
		got := esearch(cmd)
		for _, w := range want {
			if !strings.Contains(" "+got+" ", " "+w+" ") {
				t.Errorf("%s = %q, lacks %q", cmd, got, w)
			}
		}
	}
	check(`SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN`, "MIN 2", "MAX 5", "COUNT 3", "ALL 2,4:5")
	check(`SEARCH RETURN (COUNT) ALL`, "COUNT 5")
	check(`SEARCH RETURN (MIN) SEEN`, "MIN 1")
	check(`SEARCH RETURN () FLAGGED`, "ALL 2")
	check(`UID SEARCH RETURN (ALL COUNT) SEEN`, "UID", "ALL 1,3", "COUNT 2")
	// Empty results: a COUNT of 0, and no MIN, MAX or ALL (RFC 4731).
	got := esearch(`SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nothing-like-this`)
	if got != "COUNT 0" {
		t.Errorf("empty ESEARCH = %q", got)
	}
	if got := esearch(`UID SEARCH RETURN (MIN MAX ALL) KEYWORD $Nothing`); got != "UID" {
		t.Errorf("empty UID ESEARCH = %q", got)
	}

	// SEARCHRES: save a result and use it as "$". SAVE alone answers
	// nothing but OK (RFC 5182); with another option, ESEARCH.
	if u := rc.ok(`SEARCH RETURN (SAVE) OR FLAGGED DRAFT`); len(u) != 0 {
		t.Errorf("SEARCH RETURN (SAVE): untagged %q, want none", u)
	}
	mustContain(t, rc.ok(`SEARCH RETURN (SAVE COUNT) OR FLAGGED DRAFT`), "* ESEARCH", "COUNT 2")
	mustContain(t, rc.ok(`FETCH $ (UID)`), "* 2 FETCH (UID 2)")
	if f := rc.ok(`FETCH $ (UID)`); len(f) != 2 {
		t.Errorf("FETCH $: %q", f)
	}
	if got := search(t, rc, `$ SEEN`); got != "" {
		t.Errorf("SEARCH $ SEEN = %q", got)
	}
	if got := search(t, rc, `NOT $`); got != "1 3 4" {
		t.Errorf("SEARCH NOT $ = %q", got)
	}
	if got := search(t, rc, `UID $`); got != "2 5" {
		t.Errorf("SEARCH UID $ = %q", got)
	}
	mustContain(t, rc.ok(`UID STORE $ +FLAGS ($Saved)`), "$Saved")
	rc.ok(`UID COPY $ Archive`)
	mustContain(t, rc.ok(`STATUS Archive (MESSAGES)`), "MESSAGES 2")
	// A saved result follows expunges: message 2 expunged, $ is UID 5.
	rc.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	rc.ok(`UID EXPUNGE 2`)
	if f := rc.ok(`FETCH $ (UID)`); len(f) != 1 || f[0] != "* 4 FETCH (UID 5)" {
		t.Errorf("FETCH $ after expunge: %q", f)
	}
	// A new SAVE replaces it; an empty result makes $ empty.
	rc.cmd(`SEARCH RETURN (SAVE) SUBJECT nothing-like-this`)
	if f := rc.ok(`FETCH $ (UID)`); len(f) != 0 {
		t.Errorf("FETCH $ after an empty SAVE: %q", f)
	}
	// With ENABLE IMAP4rev2, plain SEARCH answers with ESEARCH (UIDs 1
	// and 3 are sequence numbers 1 and 2 since UID 2 went).
	rc.ok(`ENABLE IMAP4rev2`)
	check(`SEARCH SEEN`, "ALL 1:2")
	check(`UID SEARCH SEEN`, "UID", "ALL 1,3")
}

// TestSearchClient checks that the go-imap client always gets a typed
// result, even an empty one.
func TestSearchClient(t *testing.T) {
	ts, _ := searchMailbox(t)
	c := ts.client("alice")
	c.selectBox("INBOX")
	d, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if uids := d.AllUIDs(); len(uids) != 2 || uids[0] != 1 || uids[1] != 3 {
		t.Errorf("UID SEARCH SEEN: %v", uids)
	}
	d, err = c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "nothing"}}},
		&imap.SearchOptions{ReturnAll: true, ReturnCount: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	// (An empty ESEARCH result has no ALL on the wire (RFC 4731), so
	// imapclient leaves All nil; the UID marker is checked in TestESearch.)
	if len(d.AllUIDs()) != 0 || d.Count != 0 {
		t.Errorf("empty UID SEARCH: %#v", d)
	}
	d, err = c.Search(&imap.SearchCriteria{
		Since: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
		Body:  []string{"avocado"},
	}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if seqs := d.AllSeqNums(); len(seqs) != 1 || seqs[0] != 4 {
		t.Errorf("SEARCH SINCE BODY: %v", seqs)
	}
	// A plain empty SEARCH is typed.
	d, err = c.UIDSearch(&imap.SearchCriteria{Body: []string{"nothing-like-this"}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.All.(imap.UIDSet); !ok || len(d.AllUIDs()) != 0 {
		t.Errorf("empty UID SEARCH: %#v", d)
	}
	// With IMAP4rev2 enabled, the answer is ESEARCH.
	if _, err := c.Enable(imap.CapIMAP4rev2).Wait(); err != nil {
		t.Fatal(err)
	}
	d, err = c.Search(&imap.SearchCriteria{Body: []string{"avocado"}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if seqs := d.AllSeqNums(); len(seqs) != 1 || seqs[0] != 4 {
		t.Errorf("SEARCH with IMAP4rev2: %#v", d)
	}
}
