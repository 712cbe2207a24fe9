package imapsrv_test

import (
	"strings"
	"testing"
	"time"
)

// FuzzCommandLine sends one arbitrary command line, in the selected state,
// to a real server: whatever it is, the answer is a tagged OK, NO or BAD
// within a few seconds, never NO [SERVERBUG] (a malformed argument is the
// client's error, see third_party/go-imap), and the connection still
// answers NOOP afterwards. Commands that wait for more from the client
// (AUTHENTICATE, IDLE, literals) or end the session are left out.
func FuzzCommandLine(f *testing.F) {
	for _, seed := range []string{
		"FETCH 1:* (FLAGS)", "FETCH x (FLAGS)", "UID FETCH 1,2:* (BODY.PEEK[HEADER.FIELDS (From)])",
		"SEARCH SINCE 99-Xyz-2024", "SEARCH OR OR SEEN", `SEARCH SUBJECT "open`, "STORE 1 +FLAGS (\\Seen",
		`LIST "" "&Jjo-"`, `LIST "" "&&-\xff"`, `SELECT "unterminated`, "STATUS INBOX (MESSAGES UNSEEN",
		"COPY 1:* Archive", "MOVE 2 Nowhere", "EXPUNGE", "SEARCH RETURN (SAVE) ALL", "FETCH $ (UID)",
		"ENABLE IMAP4rev2", "NAMESPACE", "CREATE a/b/c", "RENAME a b", "UID EXPUNGE 1:*",
		`GETQUOTAROOT INBOX`, `GETQUOTA ""`, `SETQUOTA "" (STORAGE 512 MESSAGE 10)`, `SETQUOTA "" (STORAGE`, `GETQUOTA "x" y`,
	} {
		f.Add(seed)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 3)
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n{") || len(line) > 4000 {
			return // one line, no literal (the server would wait for its data)
		}
		word := strings.ToUpper(strings.SplitN(strings.TrimSpace(line), " ", 2)[0])
		if word == "UID" {
			if f := strings.Fields(strings.ToUpper(line)); len(f) > 1 {
				word = f[1]
			}
		}
		switch word {
		case "AUTHENTICATE", "IDLE", "APPEND", "LOGOUT", "STARTTLS", "COMPRESS", "DONE":
			return
		}
		per := *ts // the server, with this input's t for failures
		per.t = t
		rc := per.rawLogin("alice")
		defer rc.conn.Close()
		rc.ok("SELECT INBOX")
		rc.write("F1 " + line + "\r\n")
		deadline := time.Now().Add(10 * time.Second)
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: no tagged answer: %v", line, err)
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
