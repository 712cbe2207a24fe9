package imapsrv_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzFetchMessage appends arbitrary bytes through a real session and asks
// for everything a client might: BODYSTRUCTURE, ENVELOPE, a part's MIME
// header, the text, the whole message, and a SEARCH through its text. The
// server must answer every command, return the stored bytes unchanged, and
// keep the connection.
func FuzzFetchMessage(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 1<<16 {
			t.Skip("too big to be interesting")
		}
		rc.t = t
		tag := rc.nextTag()
		rc.write(fmt.Sprintf("%s APPEND INBOX {%d+}\r\n%s\r\n", tag, len(raw), raw))
		_, st := rc.readUntilTagged(tag)
		if bytes.IndexByte(raw, 0) >= 0 {
			// NUL bytes come only as a literal8 (binary.go).
			if !strings.HasPrefix(st, "BAD") {
				t.Fatalf("APPEND of NUL bytes in a plain literal: %q", st)
			}
			return
		}
		if !strings.HasPrefix(st, "OK [APPENDUID ") {
			t.Fatalf("APPEND: %q", st)
		}
		var uv, uid uint32
		fmt.Sscanf(st, "OK [APPENDUID %d %d]", &uv, &uid)
		f := rc.ok(fmt.Sprintf(`UID FETCH %d (UID RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE BODY.PEEK[1.MIME] `+
			`BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[2.HEADER] BODY.PEEK[HEADER.FIELDS (From Subject)] BINARY.PEEK[1])`, uid))
		if len(f) != 1 || !strings.Contains(f[0], fmt.Sprintf("RFC822.SIZE %d", len(raw))) {
			t.Fatalf("FETCH: %q", f)
		}
		f = rc.ok(fmt.Sprintf(`UID FETCH %d (BODY.PEEK[])`, uid))
		if len(f) != 1 || !strings.HasSuffix(f[0], fmt.Sprintf("BODY[] {%d}\r\n%s)", len(raw), raw)) {
			t.Fatalf("BODY[] is not what was appended: %q", f)
		}
		mustContain(t, rc.ok(`UID SEARCH TEXT "hello" UID `+itoa(uid)), "* SEARCH")
		rc.ok(`UID SEARCH BODY "x" SUBJECT "y"`)
		rc.ok(fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, uid))
		rc.ok(fmt.Sprintf(`UID EXPUNGE %d`, uid))
	})
}
