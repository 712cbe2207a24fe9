package imapsrv_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"certmail/imapsrv"
)

// FuzzMetadataCommand sends an arbitrary GETMETADATA or SETMETADATA line
// to a real server (the entry and option parsers of third_party/go-imap's
// imapserver/metadata.go and the session and store behind them): the
// answer is a tagged OK, NO or BAD, never a server fault; every entry a
// METADATA response names is a valid entry name (RFC 5464 section 3.2);
// the connection still answers NOOP.
func FuzzMetadataCommand(f *testing.F) {
	for _, seed := range []string{
		`GETMETADATA "" /shared/comment`, `GETMETADATA INBOX (/shared/comment /private/comment)`,
		`GETMETADATA (MAXSIZE 10 DEPTH infinity) INBOX /private`, `GETMETADATA INBOX (DEPTH 1) (/private/a)`,
		`GETMETADATA (DEPTH 2) INBOX /private`, `GETMETADATA INBOX /private//a`, `GETMETADATA INBOX "/private/a*"`,
		`SETMETADATA INBOX (/private/a "x" /shared/b NIL)`, `SETMETADATA "" (/private/devicetoken "t")`,
		`SETMETADATA "" (/shared/comment "x")`, `SETMETADATA INBOX (/private "x")`, `SETMETADATA INBOX (/private/a/b/c "")`,
		`SETMETADATA nosuch (/private/a "x")`, `SETMETADATA INBOX ()`, `GETMETADATA INBOX ()`,
	} {
		f.Add(seed)
	}
	ts := newTestServer(f, withMetadata(imapsrv.MetadataOptions{Comment: "c", MaxEntries: 20}))
	ts.addUser("alice")
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n{") || len(line) > 4000 {
			return // one line, no literal
		}
		per := *ts
		per.t = t
		rc := per.rawLogin("alice")
		defer rc.conn.Close()
		rc.write("F1 " + line + "\r\n")
		deadline := time.Now().Add(10 * time.Second)
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: no tagged answer: %v", line, err)
			}
			if rest, ok := strings.CutPrefix(l, "* METADATA "); ok {
				checkMetadataResponse(t, line, rest)
				continue
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
		rc.ok("NOOP")
	})
}

// checkMetadataResponse checks the entry names of a METADATA response:
// the list alternates names and values, quoted strings or NIL (a
// response with a literal is not parsed here).
func checkMetadataResponse(t *testing.T, line, rest string) {
	t.Helper()
	i := strings.Index(rest, " (")
	if i < 0 || !strings.HasSuffix(rest, ")") {
		t.Fatalf("%q: METADATA response without a list: %q", line, rest)
	}
	body := rest[i+2 : len(rest)-1]
	if strings.Contains(body, "{") {
		return
	}
	var tokens []string
	for len(body) > 0 {
		body = strings.TrimPrefix(body, " ")
		if strings.HasPrefix(body, "NIL") {
			tokens, body = append(tokens, "NIL"), body[3:]
			continue
		}
		if !strings.HasPrefix(body, `"`) {
			t.Fatalf("%q: bad token in %q", line, rest)
		}
		var sb strings.Builder
		j := 1
		for ; j < len(body) && body[j] != '"'; j++ {
			if body[j] == '\\' {
				j++
			}
			if j < len(body) {
				sb.WriteByte(body[j])
			}
		}
		tokens, body = append(tokens, sb.String()), body[min(j+1, len(body)):]
	}
	if len(tokens)%2 != 0 {
		t.Fatalf("%q: odd list in %q", line, rest)
	}
	for j := 0; j < len(tokens); j += 2 {
		if err := imap.CheckMetadataEntry(tokens[j], true); err != nil {
			t.Fatalf("%q: response names an invalid entry: %v", line, err)
		}
	}
}
