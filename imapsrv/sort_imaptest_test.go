package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"
)

// These tests replay Dovecot's imaptest scripts for SORT and THREAD
// (imaptest src/tests/sort-addresses, sort-display-from, sort-display-to,
// sort-subject, thread): the same messages appended with the internal
// dates of their mbox "From " lines, the same commands, the same answers.

// imaptestMsg is one message of an imaptest mbox: its internal date as
// APPEND takes it and its header lines (the body is its number).
type imaptestMsg struct {
	date   string
	header []string
}

// replayImaptest appends msgs to a fresh INBOX, then runs each command
// and wants exactly its expected untagged answer.
func replayImaptest(t *testing.T, msgs []imaptestMsg, steps [][2]string) {
	t.Helper()
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	for i, m := range msgs {
		raw := strings.Join(m.header, "\r\n") + "\r\n\r\n" + fmt.Sprint(i+1) + "\r\n"
		if _, st := rc.appendRaw(fmt.Sprintf("INBOX %q", m.date), raw); !strings.HasPrefix(st, "OK") {
			t.Fatalf("APPEND %d: %s", i+1, st)
		}
	}
	rc.ok("SELECT INBOX")
	for _, s := range steps {
		if s[1] == "" {
			rc.ok(s[0])
			continue
		}
		want := s[1][:strings.Index(s[1][2:], " ")+2]
		if got := sortLine(t, rc, s[0], want); got != s[1] {
			t.Errorf("%s: %q, want %q", s[0], got, s[1])
		}
	}
}

// TestImaptestSortAddresses: FROM, TO and CC sort by the addr-mailbox of
// the first address; a group's start marker is that address, its
// addr-mailbox the group's name ("user2: blah@domain1.org;" sorts as
// "user2", tying with message 1, so sequence order decides).
func TestImaptestSortAddresses(t *testing.T) {
	replayImaptest(t, []imaptestMsg{
		{"22-Feb-2008 00:06:23 +0000", []string{"From: user2@domain2.org", "To: foo bar <user2@domain2.org>", "Cc: user2@domain2.org (foo bar)"}},
		{"22-Feb-2008 01:06:23 +0000", []string{"From: user2@domain1.org", "To: user2@domain1.org", "Cc: user2: blah@domain1.org;"}},
		{"22-Feb-2008 02:06:23 +0000", []string{"From: user1@domain1.org", "To: user1@domain1.org", "Cc: user1@domain1.org"}},
	}, [][2]string{
		{"SORT (FROM) US-ASCII ALL", "* SORT 3 1 2"},
		{"SORT (TO) US-ASCII ALL", "* SORT 3 1 2"},
		{"SORT (CC) US-ASCII ALL", "* SORT 3 1 2"},
		{"SORT (REVERSE FROM) US-ASCII ALL", "* SORT 1 2 3"},
		{"SORT (REVERSE TO) US-ASCII ALL", "* SORT 1 2 3"},
		{"SORT (REVERSE CC) US-ASCII ALL", "* SORT 1 2 3"},
		{"SORT (FROM REVERSE ARRIVAL) US-ASCII ALL", "* SORT 3 2 1"},
		{"SORT (TO REVERSE ARRIVAL) US-ASCII ALL", "* SORT 3 2 1"},
		{"SORT (CC REVERSE ARRIVAL) US-ASCII ALL", "* SORT 3 2 1"},
	})
}

// TestImaptestSortDisplay: DISPLAYFROM and DISPLAYTO (RFC 5957 section 3)
// sort by the display name (RFC 2047 decoded), else the addr-spec; a
// domainless "d" by itself; a group by its name.
func TestImaptestSortDisplay(t *testing.T) {
	const date = "22-Feb-2008 23:00:00 +0200"
	names := []string{"foo bar <a@b.c>", "b@c.d", "d", "=?iso-8859-1?q?foo_aar?= <e@f.g>", "=?iso-8859-1?q?foo_car?= <f@g.h>"}
	var from, to []imaptestMsg
	for _, n := range names {
		from = append(from, imaptestMsg{date, []string{"From: " + n}})
		to = append(to, imaptestMsg{date, []string{"To: " + n}})
	}
	for _, n := range []string{"a: xx@xx.org, yy@yy.org;", "z: aa@aa.org, bb@bb.org;", "empty:;"} {
		to = append(to, imaptestMsg{date, []string{"To: " + n}})
	}
	t.Run("from", func(t *testing.T) {
		replayImaptest(t, from, [][2]string{
			{"SORT (DISPLAYFROM) US-ASCII ALL", "* SORT 2 3 4 1 5"},
			{"SORT (REVERSE DISPLAYFROM) US-ASCII ALL", "* SORT 5 1 4 3 2"},
		})
	})
	t.Run("to", func(t *testing.T) {
		replayImaptest(t, to, [][2]string{
			{"SORT (DISPLAYTO) US-ASCII ALL", "* SORT 6 2 3 8 4 1 5 7"},
			{"SORT (REVERSE DISPLAYTO) US-ASCII ALL", "* SORT 7 5 1 4 8 3 2 6"},
		})
	})
}

// TestImaptestSortSubject: base subjects (RFC 5256 section 2.1, encoded
// words decoded first) compared with i;ascii-casemap, which maps a-z to
// A-Z, so "[xyz]" and "_" sort after every letter; REVERSE per key.
func TestImaptestSortSubject(t *testing.T) {
	const date = "22-Feb-2008 23:00:00 +0200"
	var msgs []imaptestMsg
	for _, s := range []string{
		"Subject: a", "Subject: C", "Subject: b", "Subject: _",
		"Subject: [foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "Subject: b (a)", "Subject: Re: [FWD: c]", "Subject: [xyz]",
		"", "Subject: =?iso-8859-1?q?_?=", "Subject: Re: =?utf-8?q?b?=", "Subject: =?iso-8859-1?q?RE:_C?=",
		"Subject: =?us-ascii?b?UmU6IGM=?=", "Subject: Ad: Re: Ad: Re: Ad: x", "Subject: re: [fwd: [fwd: re: [fwd: babylon]]]",
	} {
		h := []string{"X-Imaptest: sort-subject"} // message 9 has no Subject
		if s != "" {
			h = append(h, s)
		}
		msgs = append(msgs, imaptestMsg{date, h})
	}
	// The script's messages 11-13 are larger, in that order, for SIZE.
	msgs[10].header = append(msgs[10].header, "X-Pad: "+strings.Repeat("x", 64))
	msgs[11].header = append(msgs[11].header, "X-Pad: "+strings.Repeat("x", 128))
	msgs[12].header = append(msgs[12].header, "X-Pad: "+strings.Repeat("x", 192))
	replayImaptest(t, msgs, [][2]string{
		{"SORT (SUBJECT) US-ASCII ALL", "* SORT 9 10 1 14 3 5 11 6 15 2 7 12 13 8 4"},
		{"SORT (REVERSE SUBJECT) US-ASCII ALL", "* SORT 4 8 2 7 12 13 15 6 3 5 11 14 1 9 10"},
		{"SORT (SUBJECT REVERSE SIZE) US-ASCII ALL", "* SORT 10 9 1 14 11 5 3 6 15 13 12 7 2 8 4"},
	})
}

// TestImaptestThread: <b> references <a> <c>, so <c> sits under <a>
// until message <c> itself arrives, referring to <b>: that would be a
// loop (<b> is <c>'s child), so <c> gets no parent at all, and its old
// one, a guess from <b>'s References, goes too (RFC 5256 section 4, step
// 1C). Roots by date: <c> (16:06) before <a> (17:06).
func TestImaptestThread(t *testing.T) {
	replayImaptest(t, []imaptestMsg{
		{"22-Feb-2008 17:06:23 +0000", []string{"Message-ID: <a@b>"}},
		{"22-Feb-2008 15:06:23 +0000", []string{"Message-Id: <b@b>", "References: <a@b> <c@b>"}},
		{"22-Feb-2008 16:06:25 +0000", []string{"Message-Id: <c@b>", "References: <b@b>"}},
	}, [][2]string{
		{"THREAD REFERENCES US-ASCII ALL", "* THREAD (3 2)(1)"},
		{"STORE 1 +FLAGS \\Deleted", ""},
		{"EXPUNGE", ""},
		{"THREAD REFERENCES US-ASCII ALL", "* THREAD (2 1)"},
	})
}
