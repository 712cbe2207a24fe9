package imapsrv_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzBinarySection sends FETCH BINARY with arbitrary section specs and
// partial ranges (go-imap's readSectionBinary and maybeReadPartial, and
// the decoding in binary.go) against messages of every shape in
// testdata: each command gets OK, NO or BAD and the session goes on.
func FuzzBinarySection(f *testing.F) {
	for _, s := range []string{"[]", "[1]", "[1.2]<0.10>", "[2.1]<5.3>", "[4]", "[1.2.3.4.5]", "[]<0.0>", "[99]", "[1]<4294967295.1>", "[0]", "[1.TEXT]", "[1]<1>"} {
		f.Add(s)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", binaryMessage)
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if bytes.IndexByte(b, 0) < 0 {
			ts.deliver("alice", "INBOX", string(b))
		}
	}
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	f.Fuzz(func(t *testing.T, spec string) {
		if len(spec) > 200 || strings.ContainsAny(spec, "\r\n{") {
			t.Skip("not one line")
		}
		rc.t = t
		for _, item := range []string{"BINARY.PEEK", "BINARY.SIZE"} {
			_, st := rc.cmd(fmt.Sprintf("FETCH 1:* (%s%s)", item, spec))
			if !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "NO") && !strings.HasPrefix(st, "BAD") || strings.Contains(st, "SERVERBUG") {
				t.Fatalf("FETCH 1:* (%s%s): %q", item, spec, st)
			}
		}
		rc.ok("NOOP")
	})
}

// FuzzAppendLiteral8 appends arbitrary bytes as a literal8: the message
// is stored (NUL bytes re-encoded, binary.go's storableBinary) or refused
// with UNKNOWN-CTE, and what is stored never holds a NUL byte.
func FuzzAppendLiteral8(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(binaryMessage))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\r\n--b--\r\n"))
	ts := newTestServer(f)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 1<<16 {
			t.Skip("too big to be interesting")
		}
		rc.t = t
		tag := rc.nextTag()
		rc.write(fmt.Sprintf("%s APPEND INBOX ~{%d+}\r\n%s\r\n", tag, len(raw), raw))
		_, st := rc.readUntilTagged(tag)
		if strings.HasPrefix(st, "NO [UNKNOWN-CTE]") {
			return
		}
		if !strings.HasPrefix(st, "OK [APPENDUID ") {
			t.Fatalf("APPEND: %q", st)
		}
		var uv, uid uint32
		fmt.Sscanf(st, "OK [APPENDUID %d %d]", &uv, &uid)
		l := rc.ok(fmt.Sprintf("UID FETCH %d (BODY.PEEK[])", uid))
		if len(l) != 1 {
			t.Fatalf("FETCH: %q", l)
		}
		if strings.IndexByte(l[0], 0) >= 0 {
			t.Fatalf("stored message holds NUL bytes: %q", l[0])
		}
		if bytes.IndexByte(raw, 0) < 0 && !strings.Contains(l[0], fmt.Sprintf("{%d}\r\n%s", len(raw), raw)) {
			t.Fatalf("a message without NUL bytes changed: %q", l[0])
		}
		if _, st := rc.cmd(fmt.Sprintf("UID FETCH %d (BINARY.PEEK[1] BINARY.SIZE[1])", uid)); !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "NO [UNKNOWN-CTE]") {
			t.Fatalf("FETCH BINARY: %q", st)
		}
		rc.ok(fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, uid))
		rc.ok(fmt.Sprintf(`UID EXPUNGE %d`, uid))
	})
}
