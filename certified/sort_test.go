package certified_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"certmail/certified"
	"certmail/mailbox"
)

// TestStubSortThreadRevealNothingOfM extends the stub-leak tests to SORT,
// ESORT and THREAD (RFC 5256, 5957, 5267): next to messages placed so that
// M's size, subject, sender or Message-ID would put the stub between them
// or in their thread, the stub sorts and threads by its own headers and
// size only.
func TestStubSortThreadRevealNothingOfM(t *testing.T) {
	e := newEnv(t)
	e.post(certified.Spec{Reveal: certified.RevealNone}) // 1: the stub
	for _, m := range []string{
		// 2, 3: M's size (5,865 bytes) is between theirs (about 5,400 and
		// 6,400); the stub's (about 4,400) is not
		mail("Size small", "x@example.org", "", strings.Repeat("s", 5300)),
		mail("Size large", "x@example.org", "", strings.Repeat("l", 6300)),
		// 4, 5: M's subject ("Summons ...") sorts between them
		mail("Summons", "x@example.org", "", "a"),
		mail("Summons zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "x@example.org", "", "a"),
		// 6, 7: M's sender (clerk, "Court Clerk") sorts between them
		mail("from 1", `"Court Clerj" <clerc@example.org>`, "", "a"),
		mail("from 2", `"Court Clerl" <clerl@example.org>`, "", "a"),
		// 8: a reply to M, by its Message-ID and its subject
		mail("Re: Summons "+secret, "x@example.org", "<summons@court.example>", "a"),
	} {
		if err := e.store.Update(func(tx *mailbox.Tx) error {
			_, err := tx.Append("alice", "INBOX", []byte(m), mailbox.AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	rc := e.rawLogin("alice")
	rc.ok("SELECT INBOX")
	between := func(cmd string, a, b string) {
		t.Helper()
		l := rc.ok(cmd)
		if len(l) != 1 || !strings.HasPrefix(l[0], "* SORT ") {
			t.Fatalf("%s: %q", cmd, l)
		}
		nums := strings.Fields(strings.TrimPrefix(l[0], "* SORT "))
		i, ia, ib := slices.Index(nums, "1"), slices.Index(nums, a), slices.Index(nums, b)
		if i < 0 || ia < 0 || ib < 0 {
			t.Fatalf("%s: %q", cmd, l)
		}
		if (ia < i && i < ib) || (ib < i && i < ia) {
			t.Errorf("%s: %q puts the stub where M would sort, between %s and %s", cmd, l[0], a, b)
		}
	}
	between("SORT (SIZE) UTF-8 ALL", "2", "3")
	between("SORT (SUBJECT) UTF-8 ALL", "4", "5")
	between("SORT (REVERSE SUBJECT) UTF-8 ALL", "4", "5")
	between("SORT (FROM) UTF-8 ALL", "6", "7")
	between("SORT (DISPLAYFROM) UTF-8 ALL", "6", "7")
	// ESORT's COUNT of messages of M's size.
	if l := rc.ok("SORT RETURN (COUNT) (SIZE) UTF-8 LARGER 5800 SMALLER 5900"); len(l) != 1 || !strings.HasSuffix(l[0], "COUNT 0") {
		t.Errorf("ESORT over M's size: %q", l)
	}
	for _, algo := range []string{"REFERENCES", "ORDEREDSUBJECT"} {
		l := rc.ok("THREAD " + algo + " UTF-8 ALL")
		if len(l) != 1 {
			t.Fatalf("THREAD %s: %q", algo, l)
		}
		if !slices.Contains(topThreads(strings.TrimPrefix(l[0], "* THREAD ")), "(1)") {
			t.Errorf("THREAD %s: %q: the stub is not alone (M's Message-ID or subject joined it to a reply)", algo, l[0])
		}
	}
}

func mail(subject, from, inReplyTo, body string) string {
	h := fmt.Sprintf("From: %s\r\nTo: alice@example.org\r\nSubject: %s\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n", from, subject)
	if inReplyTo != "" {
		h += "In-Reply-To: " + inReplyTo + "\r\n"
	}
	return h + "\r\n" + body + "\r\n"
}

// topThreads splits a THREAD answer into its top-level thread lists.
func topThreads(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			if depth == 0 {
				start = i
			}
			depth++
		case ')':
			depth--
			if depth == 0 {
				out = append(out, s[start:i+1])
			}
		}
	}
	return out
}
