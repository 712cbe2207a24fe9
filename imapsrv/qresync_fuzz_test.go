package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzQResyncParams sends arbitrary QRESYNC select parameters and UID
// FETCH modifiers (third_party/go-imap's parseQResyncParam and the fetch
// modifier parser) to a real server with QRESYNC enabled: the answer is
// a tagged OK, NO or BAD, never NO [SERVERBUG], a VANISHED (EARLIER)
// never names a message that exists (UIDs 1, 3 and 4 here; 2 and 5 were
// expunged), and the connection still answers NOOP afterwards. "UV" in
// the input stands for the mailbox's UIDVALIDITY.
func FuzzQResyncParams(f *testing.F) {
	for _, seed := range []string{
		"SELECT INBOX (QRESYNC (1 1))", "SELECT INBOX (QRESYNC (UV 1 1:*))", "EXAMINE INBOX (QRESYNC (UV 0 1:5 (1:3 1,3:4)))",
		"SELECT INBOX (QRESYNC (UV 1 (1 1)))", "SELECT INBOX (QRESYNC (4294967295 18446744073709551615 *:1))",
		"SELECT INBOX (QRESYNC (1 1 1:5 (1:2 3)))", "SELECT INBOX (CONDSTORE QRESYNC (UV 2))", "SELECT INBOX (QRESYNC (1 1 $))",
		"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "UID FETCH $ (FLAGS) (CHANGEDSINCE 0 VANISHED)",
		"UID FETCH 5:1 (UID) (VANISHED CHANGEDSINCE 3)", "FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)",
	} {
		f.Add(seed)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 5)
	rc := ts.rawLogin("alice")
	uv := fmt.Sprint(codeNumber(f, rc.ok(`SELECT INBOX`), "UIDVALIDITY"))
	rc.ok(`UID STORE 2,5 +FLAGS.SILENT (\Deleted)`)
	rc.ok(`EXPUNGE`)
	rc.conn.Close()
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n{") || len(line) > 4000 {
			return
		}
		line = strings.ReplaceAll(line, "UV", uv) // the mailbox's UIDVALIDITY
		per := *ts
		per.t = t
		rc := per.rawLogin("alice")
		defer rc.conn.Close()
		rc.ok("ENABLE QRESYNC")
		rc.ok("SELECT INBOX")
		rc.write("F1 " + line + "\r\n")
		deadline := time.Now().Add(10 * time.Second)
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: no tagged answer: %v", line, err)
			}
			if v, ok := strings.CutPrefix(l, "* VANISHED (EARLIER) "); ok {
				for _, r := range strings.Split(v, ",") {
					lo, hi, _ := strings.Cut(r, ":")
					if hi == "" {
						hi = lo
					}
					for _, present := range []string{"1", "3", "4"} {
						if len(lo) <= len(present) && len(present) <= len(hi) && (len(lo) < len(present) || lo <= present) && (len(present) < len(hi) || present <= hi) {
							t.Fatalf("%q: %q names UID %s, which exists", line, l, present)
						}
					}
				}
			}
			if !strings.HasPrefix(l, "F1 ") {
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
