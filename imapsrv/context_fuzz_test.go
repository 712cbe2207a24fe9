package imapsrv_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapserver"
)

// FuzzPartialRange: the PARTIAL range parser of third_party/go-imap
// (imapserver/context.go, RFC 5267 section 4.4, RFC 9394 section 3.1)
// takes only first:last with both non-zero and of one sign; what it takes
// is written back as a range it takes again, the same; its window of any
// result stays inside the result and is never wider than the range.
func FuzzPartialRange(f *testing.F) {
	for _, s := range []string{"1:1", "2:4", "4:2", "-1:-100", "-100:-1", "1:*", "*:1", "0:1", "1", "-1:2", "2147483647:1", "1:4294967296", "01:2", ":", ""} {
		f.Add(s, 10)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		r, err := imapserver.ParsePartialRange(s)
		if err != nil {
			return
		}
		if r.Start == 0 || r.Stop == 0 || r.Start > r.Stop || (r.Start < 0) != (r.Stop < 0) {
			t.Fatalf("%q parsed as %+v", s, r)
		}
		back, err := imapserver.ParsePartialRange(imapserver.FormatPartialRange(r))
		if err != nil || back != r {
			t.Fatalf("%q: %+v written as %q reads %+v, %v", s, r, imapserver.FormatPartialRange(r), back, err)
		}
		n = max(n, 0) % 100_000
		from, to := imapserver.PartialWindow(r, n)
		if from < 0 || to > n || from > to || int64(to-from) > int64(r.Stop)-int64(r.Start)+1 {
			t.Fatalf("%q over %d results: window [%d, %d)", s, n, from, to)
		}
	})
}

// FuzzContextCommand sends an arbitrary SEARCH or SORT line with the
// CONTEXT=SEARCH/SORT return options to a real server, then changes the
// mailbox from another session and polls: every answer is OK, NO or BAD,
// never a server fault; every ADDTO, REMOVEFROM and PARTIAL names only
// messages that exist; the connection still answers.
func FuzzContextCommand(f *testing.F) {
	for _, seed := range []string{
		"SEARCH RETURN (UPDATE) SEEN", "UID SEARCH RETURN (UPDATE ALL COUNT) UNSEEN", "SEARCH RETURN (PARTIAL 1:2) ALL",
		"SEARCH RETURN (CONTEXT PARTIAL -1:-2 UPDATE) 2:*", "UID SORT RETURN (UPDATE PARTIAL 1:1) (SUBJECT) UTF-8 ALL",
		"SORT RETURN (UPDATE) (REVERSE ARRIVAL) UTF-8 UNDELETED", "SEARCH RETURN (PARTIAL 1:*) ALL", "SEARCH RETURN (UPDATE SAVE) $",
		"CANCELUPDATE \"F1\"", "UID FETCH 1:* (UID FLAGS) (PARTIAL -1:-2)", "UID FETCH 2:* (FLAGS) (CHANGEDSINCE 1 PARTIAL 1:1)", "SEARCH RETURN (PARTIAL 0:0) ALL", "SORT RETURN (ALL PARTIAL 1:2) (SIZE) UTF-8 ALL",
	} {
		f.Add(seed)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 3)
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n{") || len(line) > 4000 {
			return // one line, no literal
		}
		per := *ts
		per.t = t
		rc := per.rawLogin("alice")
		defer rc.conn.Close()
		rc.ok("SELECT INBOX")
		other := per.rawLogin("alice")
		defer other.conn.Close()
		other.ok("SELECT INBOX")
		var untagged []string
		answer := func(tag, cmd string) {
			rc.write(tag + " " + cmd + "\r\n")
			deadline := time.Now().Add(10 * time.Second)
			for {
				l, err := rc.tryReadLine(time.Until(deadline))
				if err != nil {
					t.Fatalf("%q: no tagged answer to %s: %v", line, cmd, err)
				}
				st, ok := strings.CutPrefix(l, tag+" ")
				if !ok {
					untagged = append(untagged, l)
					continue
				}
				if !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "NO") && !strings.HasPrefix(st, "BAD") || strings.Contains(st, "SERVERBUG") {
					t.Fatalf("%q: %s answered %q", line, cmd, l)
				}
				return
			}
		}
		answer("F1", line)
		other.ok("STORE 1:* FLAGS (\\Seen)")
		other.ok("STORE 2 +FLAGS (\\Deleted)")
		other.ok("EXPUNGE")
		answer("F2", "NOOP")
		answer("F3", "STORE 1 -FLAGS (\\Seen)")
		for _, u := range untagged {
			rest, ok := strings.CutPrefix(u, "* ESEARCH")
			if !ok {
				continue
			}
			for _, item := range []string{" ADDTO (", " REMOVEFROM (", " PARTIAL ("} {
				_, v, ok := strings.Cut(rest, item)
				if !ok {
					continue
				}
				v, _, _ = strings.Cut(v, ")")
				f := strings.Fields(v)
				for i := 1; i < len(f); i += 2 {
					for _, n := range strings.FieldsFunc(f[i], func(r rune) bool { return r == ',' || r == ':' }) {
						if n != "1" && n != "2" && n != "3" && n != "NIL" {
							t.Fatalf("%q: %q names no message", line, u)
						}
					}
				}
			}
		}
	})
}
