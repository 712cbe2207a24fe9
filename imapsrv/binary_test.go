package imapsrv_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// binaryMessage has a part of each transfer encoding BINARY decodes: 1
// base64 (with a bare CR and LF in the data, so only a literal8 carries
// it unchanged), 2 quoted-printable in ISO-8859-1 (decoded, never
// converted to UTF-8), 3 a nested message, 4 an encoding nobody knows.
const binaryMessage = "From: a@example.org\r\n" +
	"Subject: binary\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=iso-8859-1\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"caf=E9 cr=\r\n" +
	"=E8me\r\n" +
	"--b1\r\n" +
	"Content-Type: message/rfc822\r\n" +
	"\r\n" +
	"Subject: inner\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"aW5uZXIgYm9keQ==\r\n" +
	"--b1\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"Content-Transfer-Encoding: x-uuencode\r\n" +
	"\r\n" +
	"begin 644 x\r\n" +
	"--b1--\r\n"

// TestBinaryFetch: BINARY[section]<partial>, BINARY.PEEK and BINARY.SIZE
// (RFC 3516 section 4.2) decode the part's transfer encoding and nothing
// else, answer a partial fetch with its origin (BINARY[1]<2>), and
// BINARY (not .PEEK) sets \Seen as BODY does.
func TestBinaryFetch(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", binaryMessage)
	rc := ts.rawLogin("alice")
	mustContain(t, rc.ok("CAPABILITY"), " BINARY")
	rc.ok("SELECT INBOX")

	for _, c := range []struct{ item, want string }{
		{"BINARY.PEEK[1]", "BINARY[1] ~{30}\r\nabcdefg\rhijkl\r\nmno\npqrstuvqxyz"},
		{"BINARY.PEEK[1]<2.5>", "BINARY[1]<2> ~{5}\r\ncdefg"},
		{"BINARY.PEEK[1]<20.100>", "BINARY[1]<20> ~{10}\r\nqrstuvqxyz"},
		{"BINARY.PEEK[1]<99.1>", "BINARY[1]<99> ~{0}\r\n"},
		{"BINARY.SIZE[1]", "BINARY.SIZE[1] 30"},
		// ISO-8859-1 bytes as they are: é is 0xE9, not UTF-8's C3 A9.
		{"BINARY.PEEK[2]", "BINARY[2] ~{10}\r\ncaf\xe9 cr\xe8me"},
		{"BINARY.SIZE[2]", "BINARY.SIZE[2] 10"},
		// A nested message is not decoded as a whole; its own part is.
		{"BINARY.PEEK[3.1]", "BINARY[3.1] ~{10}\r\ninner body"},
		// A part that does not exist is empty.
		{"BINARY.PEEK[9]", "BINARY[9] ~{0}\r\n"},
		{"BINARY.SIZE[9]", "BINARY.SIZE[9] 0"},
	} {
		l := rc.ok("FETCH 1 (" + c.item + ")")
		if len(l) != 1 || !strings.Contains(l[0], c.want) {
			t.Errorf("FETCH 1 (%s): %q, want %q", c.item, l, c.want)
		}
	}
	mustNotContain(t, rc.ok("FETCH 1 (FLAGS)"), `\Seen`)
	mustContain(t, rc.ok("FETCH 1 (BINARY[1]<0.3>)"), `\Seen`, "BINARY[1]<0> ~{3}\r\nabc")

	// RFC 3516 section 4.3: an encoding the server cannot decode fails
	// the command with UNKNOWN-CTE, for BINARY and for BINARY.SIZE, and
	// the session goes on.
	rc.fail("NO [UNKNOWN-CTE]", "FETCH 1 (BINARY.PEEK[4])")
	rc.fail("NO [UNKNOWN-CTE]", "FETCH 1 (BINARY.SIZE[4])")
	mustContain(t, rc.ok("FETCH 1 (BODY.PEEK[4])"), "begin 644 x")
	// Malformed section specs are BAD.
	for _, bad := range []string{"BINARY[1.TEXT]", "BINARY[HEADER]", "BINARY[1]<2>", "BINARY[1", "BINARY.SIZE[1]<0.1>", "BINARY[0x1]"} {
		rejects(t, rc, "FETCH 1 ("+bad+")")
	}
}

// TestAppendLiteral8 (RFC 3516 section 4.4): a message with NUL bytes
// comes in only as a literal8. Its binary part is stored as base64, so
// that BODY[1] is readable by any client, and BINARY[1] gives the bytes
// back as they were sent.
func TestAppendLiteral8(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	data := "\x00-\xe4\n\r\n\n\x00end"
	msg := "From: a@example.org\r\n" +
		"Subject: nul\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: application/octet-stream\r\n" +
		"Content-Transfer-Encoding: binary\r\n" +
		"\r\n" + data

	_, st := rc.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	if !strings.HasPrefix(st, "BAD") {
		t.Fatalf("APPEND of NUL bytes in a plain literal: %q, want BAD", st)
	}
	_, st = rc.cmd(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(msg), msg))
	if !strings.HasPrefix(st, "OK [APPENDUID ") {
		t.Fatalf("APPEND literal8: %q", st)
	}
	// A synchronizing literal8 waits for the continuation request.
	tag := rc.nextTag()
	rc.write(fmt.Sprintf("%s APPEND INBOX (\\Seen) ~{%d}\r\n", tag, len(msg)))
	if l := rc.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("literal8: want a continuation request, got %q", l)
	}
	rc.write(msg + "\r\n")
	if _, st := rc.readUntilTagged(tag); !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND synchronizing literal8: %q", st)
	}

	rc.ok("SELECT INBOX")
	want := base64.StdEncoding.EncodeToString([]byte(data))
	l := rc.ok("FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME])")
	if len(l) != 1 || strings.ContainsRune(l[0], 0) || !strings.Contains(l[0], want) ||
		!strings.Contains(l[0], "Content-Transfer-Encoding: base64") {
		t.Errorf("BODY[1] of a literal8 message: %q, want base64 %q and no NUL", l, want)
	}
	mustContain(t, rc.ok("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])"),
		fmt.Sprintf("BINARY[1] ~{%d}\r\n%s BINARY.SIZE[1] %d)", len(data), data, len(data)))
	mustContain(t, rc.ok("FETCH 2 (FLAGS)"), `\Seen`)

	// Multipart: only the part with NUL bytes changes.
	mp := "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n" +
		"--zz\r\nContent-Type: text/plain\r\n\r\nplain text\r\n" +
		"--zz\r\nContent-Type: image/x-raw\r\nContent-Transfer-Encoding: binary\r\n\r\n" + data + "\r\n" +
		"--zz--\r\n"
	_, st = rc.cmd(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(mp), mp))
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND multipart literal8: %q", st)
	}
	mustContain(t, rc.ok("FETCH 3 (BODY.PEEK[1] BINARY.PEEK[2])"),
		"BODY[1] {10}\r\nplain text", fmt.Sprintf("BINARY[2] ~{%d}\r\n%s)", len(data), data))

	// NUL bytes where nothing can re-encode them: UNKNOWN-CTE.
	for _, bad := range []string{
		"Subject: a\x00b\r\n\r\nbody\r\n",
		"Content-Transfer-Encoding: quoted-printable\r\n\r\na\x00b\r\n",
	} {
		_, st = rc.cmd(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(bad), bad))
		if !strings.HasPrefix(st, "NO [UNKNOWN-CTE]") {
			t.Errorf("APPEND literal8 %q: %q, want NO [UNKNOWN-CTE]", bad, st)
		}
	}
	// A literal8 without NUL bytes is stored unchanged.
	plain := "Subject: eight bit \xe9\r\n\r\nbody \xe9\r\n"
	_, st = rc.cmd(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(plain), plain))
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND literal8 without NUL: %q", st)
	}
	rc.ok("NOOP")
	mustContain(t, rc.ok("FETCH 4 (BODY.PEEK[])"), fmt.Sprintf("{%d}\r\n%s)", len(plain), plain))
}

// TestAppendLiteral8AtLimit: the append limit is on what the client
// sends; a literal8 just under it is stored though its binary part grows
// by a third as base64.
func TestAppendLiteral8AtLimit(t *testing.T) {
	ts := newTestServer(t, withAppendLimit(1000))
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	head := "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
	msg := head + strings.Repeat("\x00", 1000-len(head))
	if _, st := rc.cmd(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(msg), msg)); !strings.HasPrefix(st, "OK") {
		t.Fatalf("literal8 of %d bytes under a limit of 1000: %q", len(msg), st)
	}
	rc.ok("SELECT INBOX")
	mustContain(t, rc.ok("FETCH 1 (BINARY.SIZE[1])"), fmt.Sprintf("BINARY.SIZE[1] %d", 1000-len(head)))
}
