package imapsrv_test

import (
	"strings"
	"testing"
	"time"
)

// FuzzSortThreadCommand sends an arbitrary SORT or THREAD argument line
// to a real server (the criteria parsers of third_party/go-imap's
// imapserver/sort.go and the session behind them): the answer is a tagged
// OK, NO or BAD, never a server fault; an OK's untagged SORT names only
// existing messages, an OK's THREAD has balanced parentheses; and the
// connection still answers NOOP.
func FuzzSortThreadCommand(f *testing.F) {
	for _, seed := range []string{
		"SORT (SUBJECT) UTF-8 ALL", "SORT (REVERSE DATE SIZE) US-ASCII 1:*", "UID SORT (DISPLAYFROM) UTF-8 OR SEEN UNSEEN",
		"SORT (REVERSE) UTF-8 ALL", "SORT () UTF-8 ALL", "SORT (ARRIVAL CC TO FROM DISPLAYTO) UTF-8 SUBJECT x",
		"THREAD REFERENCES UTF-8 ALL", "UID THREAD ORDEREDSUBJECT UTF-8 1:2", "THREAD X UTF-8 ALL", "THREAD REFERENCES",
		"SORT (SUBJECT) KOI8-R ALL", "SORT (SUBJECT) UTF-8 MODSEQ 1",
		"SORT RETURN (MIN MAX ALL COUNT) (DATE) UTF-8 ALL", "UID SORT RETURN (SAVE) (SIZE) UTF-8 $", "SORT RETURN () (X) UTF-8 ALL",
	} {
		f.Add(seed)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", sortMsg{subject: "Re: a", id: "<1@x>", refs: "<0@x>"}.raw())
	ts.deliver("alice", "INBOX", sortMsg{subject: "a", id: "<0@x>", date: "Mon, 02 Jan 2006 10:00:00 +0000"}.raw())
	ts.deliver("alice", "INBOX", sortMsg{subject: "[fwd: b]", id: "<2@x>", refs: "<1@x> <0@x>"}.raw())
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n{") || len(line) > 4000 {
			return // one line, no literal
		}
		per := *ts
		per.t = t
		rc := per.rawLogin("alice")
		defer rc.conn.Close()
		rc.ok("SELECT INBOX")
		rc.write("F1 " + line + "\r\n")
		deadline := time.Now().Add(10 * time.Second)
		var untagged []string
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: no tagged answer: %v", line, err)
			}
			if !strings.HasPrefix(l, "F1 ") {
				untagged = append(untagged, l)
				continue
			}
			st := strings.TrimPrefix(l, "F1 ")
			if !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "NO") && !strings.HasPrefix(st, "BAD") {
				t.Fatalf("%q: answered %q", line, l)
			}
			if strings.Contains(st, "SERVERBUG") {
				t.Fatalf("%q: answered %q (a server fault for the client's input)", line, l)
			}
			break
		}
		for _, u := range untagged {
			if rest, ok := strings.CutPrefix(u, "* ESEARCH"); ok && strings.Contains(rest, " ALL ") {
				set := strings.Fields(rest[strings.Index(rest, " ALL ")+5:])[0]
				for _, n := range strings.FieldsFunc(set, func(r rune) bool { return r == ',' || r == ':' }) {
					if n != "1" && n != "2" && n != "3" {
						t.Fatalf("%q: %q names no message", line, u)
					}
				}
			}
			if rest, ok := strings.CutPrefix(u, "* SORT"); ok {
				for _, n := range strings.Fields(rest) {
					if n != "1" && n != "2" && n != "3" {
						t.Fatalf("%q: %q names no message", line, u)
					}
				}
			}
			if strings.HasPrefix(u, "* THREAD") {
				depth := 0
				for _, c := range u {
					if c == '(' {
						depth++
					} else if c == ')' {
						depth--
					}
					if depth < 0 {
						break
					}
				}
				if depth != 0 {
					t.Fatalf("%q: unbalanced %q", line, u)
				}
			}
		}
		rc.write("F2 NOOP\r\n")
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: connection gone after it: %v", line, err)
			}
			if strings.HasPrefix(l, "F2 ") {
				if !strings.HasPrefix(l, "F2 OK") {
					t.Fatalf("%q: NOOP after it: %q", line, l)
				}
				return
			}
		}
	})
}
