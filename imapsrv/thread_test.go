package imapsrv_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func threadFixture(t *testing.T) *rawClient {
	ts := newTestServer(t)
	ts.addUser("alice")
	threadFixtureInto(ts)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	return rc
}

func threadFixtureInto(ts *testServer) {
	day := func(d int) string { return fmt.Sprintf("%s Jan 2006 10:00:00 +0000", fmt.Sprint(d)) }
	for _, m := range []sortMsg{
		{subject: "topic", date: day(2), id: "<a@x>"},                              // 1
		{subject: "Re: topic", date: day(3), id: "<b@x>", refs: "<a@x>"},           // 2
		{subject: "Re: topic", date: day(4), id: "<c@x>", refs: "<a@x>\r\n <b@x>"}, // 3
		{subject: "RE: topic", date: day(5), id: "<d@x>", inReplyTo: "<a@x>"},      // 4
		{subject: "other", date: day(6), id: "<e@x>", refs: "<missing@x>"},         // 5
		{subject: "other2", date: day(7), id: "<f@x>", refs: "<missing@x>"},        // 6
		{subject: "Re: topic", date: day(8), id: "<g@x>"},                          // 7: joined by subject
		{subject: "lonely", date: day(1), id: "<h@x>"},                             // 8
		{subject: "[list] lonely", date: day(9), id: "<i@x>"},                      // 9: neither a reply
	} {
		ts.deliver("alice", "INBOX", m.raw())
	}
}

// TestThreadReferences: THREAD=REFERENCES (RFC 5256 section 4) links by
// References and In-Reply-To, keeps a dummy root for a missing parent of
// several, gathers roots by base subject (a reply under its original,
// two originals as siblings under a dummy), and orders by sent date.
func TestThreadReferences(t *testing.T) {
	rc := threadFixture(t)
	for _, tc := range []struct{ cmd, want string }{
		{"THREAD REFERENCES UTF-8 ALL", "* THREAD ((8)(9))(1 (2 3)(4)(7))((5)(6))"},
		{"UID THREAD REFERENCES UTF-8 ALL", "* THREAD ((8)(9))(1 (2 3)(4)(7))((5)(6))"},
		{"THREAD REFERENCES UTF-8 SUBJECT topic", "* THREAD (1 (2 3)(4)(7))"},
		{"THREAD REFERENCES UTF-8 SUBJECT nothing-like-it", "* THREAD"},
	} {
		if got := sortLine(t, rc, tc.cmd, "* THREAD"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	rc.ok("STORE 1 +FLAGS (\\Deleted)")
	rc.ok("EXPUNGE")
	// Without 1 its replies hang from a dummy <a@x>, which the subject
	// gathering then joins with 7.
	if got := sortLine(t, rc, "UID THREAD REFERENCES UTF-8 ALL", "* THREAD"); got != "* THREAD ((8)(9))((2 3)(4)(7))((5)(6))" {
		t.Errorf("after expunging the root: %q", got)
	}
}

// TestThreadOrderedSubject: THREAD=ORDEREDSUBJECT (RFC 5256 section 4):
// by base subject, the earliest the parent of the rest.
func TestThreadOrderedSubject(t *testing.T) {
	rc := threadFixture(t)
	if got := sortLine(t, rc, "THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD"); got != "* THREAD (8 9)(1 (2)(3)(4)(7))(5)(6)" {
		t.Errorf("ORDEREDSUBJECT: %q", got)
	}
	rejects(t, rc, "THREAD BOGUS UTF-8 ALL")
	rejects(t, rc, "THREAD REFERENCES")
}

// TestThreadLoops: references that loop, or name the message itself,
// still give every message once.
func TestThreadLoops(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for _, m := range []sortMsg{
		{subject: "a", id: "<1@x>", refs: "<2@x> <1@x>"},
		{subject: "b", id: "<2@x>", refs: "<1@x> <2@x>"},
		{subject: "c", id: "<1@x>", refs: "<3@x> <2@x> <3@x>"},
		{subject: "d", refs: "<4@x> <4@x>"},
	} {
		ts.deliver("alice", "INBOX", m.raw())
	}
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	line := sortLine(t, rc, "THREAD REFERENCES UTF-8 ALL", "* THREAD")
	nums := regexp.MustCompile(`\d+`).FindAllString(line, -1)
	slices.Sort(nums)
	if strings.Join(nums, " ") != "1 2 3 4" {
		t.Errorf("THREAD with loops: %q", line)
	}
}

// TestThreadGoIMAPClient: go-imap's client reads certmail's THREAD answer
// (nested lists without spaces, RFC 5256 section 5) and SORT's.
func TestThreadGoIMAPClient(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	threadFixtureInto(ts)
	c := ts.client("alice")
	c.selectBox("INBOX")
	threads, err := c.UIDThread(&imapclient.ThreadOptions{Algorithm: imap.ThreadReferences, SearchCriteria: &imap.SearchCriteria{}}).Wait()
	if err != nil {
		t.Fatalf("UID THREAD REFERENCES: %v", err)
	}
	if got := showThreads(threads); got != "((8)(9))(1 (2 3)(4)(7))((5)(6))" {
		t.Errorf("UID THREAD REFERENCES through go-imap's client: %s", got)
	}
	nums, err := c.Sort(&imapclient.SortOptions{SearchCriteria: &imap.SearchCriteria{},
		SortCriteria: []imapclient.SortCriterion{{Key: imapclient.SortKeyDate, Reverse: true}}}).Wait()
	if err != nil || fmt.Sprint(nums) != "[9 7 6 5 4 3 2 1 8]" {
		t.Errorf("SORT (REVERSE DATE) through go-imap's client: %v, %v", nums, err)
	}
}

func showThreads(ts []imapclient.ThreadData) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteByte('(')
		for i, n := range t.Chain {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprint(&b, n)
		}
		if len(t.Chain) > 0 && len(t.SubThreads) > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(showThreads(t.SubThreads))
		b.WriteByte(')')
	}
	return b.String()
}
