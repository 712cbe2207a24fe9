package imapsrv_test

import (
	"strings"
	"testing"
)

// TestMalformedCommands: garbage gets BAD and the connection survives.
func TestMalformedCommands(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 3)
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)

	for _, line := range []string{
		`BOGUS`,
		`FETCH`,
		`FETCH 1`,
		`FETCH 1 (FLAGS`,
		`FETCH 1 FLAGS)`,
		`FETCH 1:2:3 (FLAGS)`,
		`FETCH -1 (FLAGS)`,
		`FETCH 4294967296 (FLAGS)`,
		`FETCH 1 (BODY[1.2.3.HEADER.FIELDS (From])`,
		`FETCH 1 (BODY[]<x.y>)`,
		`FETCH 1 (BODY[TEXT]<5.0.1>)`,
		`UID BOGUS 1`,
		`UID FETCH 1:* (FLAGS) extra`,
		`STORE 1 +FLAGS (\Seen`,
		`STORE 1 ++FLAGS (\Seen)`,
		`SELECT`,
		`SELECT "unterminated`, // the next command (NOOP, by rejects) is not swallowed
		`LOGIN "alice`,
		`SEARCH SUBJECT "open`,
		`LIST "" `,
		`LIST ("" "*"`,
		`STATUS INBOX (MESSAGES`,
		`SEARCH OR OR OR`,
		`SEARCH NOT`,
		`SEARCH SINCE 99-Xyz-2024`,
		`SEARCH HEADER`,
		"NOOP \x00",
		"FETCH 1 (FLAGS)\x00",
		"LIST \"\" \"\xff\xfe\"",
		`NOOP extra arguments`,
		`LOGIN alice "secret pw"`,
		`AUTHENTICATE PLAIN`,
		strings.Repeat("X", 10000),
	} {
		rejects(t, rc, line)
	}
	// A long but valid set.
	if f := rc.ok(`FETCH ` + strings.Repeat("1,", 5000) + `1 (UID)`); len(f) != 1 {
		t.Errorf("FETCH 1,1,...: %q", f)
	}
	// Not a literal.
	// (go-imap reads this as the mailbox "abc}": NO [NONEXISTENT].)
	if _, st := rc.cmd(`SELECT {abc}`); !strings.HasPrefix(st, "BAD") && !strings.HasPrefix(st, "NO [NONEXISTENT]") {
		t.Errorf("SELECT {abc}: %q", st)
	}
	rc.ok(`SELECT INBOX`)
	// A synchronizing literal too big for the command is refused at once.
	rc.fail("NO [TOOBIG]", `CREATE {99999999}`)
	rc.alive()
	// A tag with odd characters.
	rc.write("a+b NOOP\r\n")
	if l := rc.readLine(); !strings.Contains(l, "BAD") && !strings.HasPrefix(l, "a+b OK") {
		t.Errorf("odd tag: %q", l)
	}
	rc.alive()
	mustContain(t, rc.ok(`FETCH 1:* (UID)`), "* 3 FETCH (UID 3)")

	// Lines without a command name: go-imap drops the connection for
	// them; the literalGuard skips empty lines and gets BAD for the rest.
	for _, line := range []string{"", "   ", "\t"} {
		rc.write(line + "\r\n")
		rc.alive()
	}
	for _, line := range []string{"lonelytag", "t UID", "t UID ", "t uid"} {
		tag := strings.Fields(line)[0]
		rc.write(line + "\r\n")
		if l := rc.readLine(); !strings.HasPrefix(l, tag+" BAD") {
			t.Errorf("%q: %q", line, l)
		}
		rc.alive()
	}
	// A command after an empty line in the same packet still runs.
	rc.write("\r\nq1 NOOP\r\n")
	if _, st := rc.readUntilTagged("q1"); !strings.HasPrefix(st, "OK") {
		t.Errorf("NOOP after an empty line: %q", st)
	}

	// Before authentication, go-imap answers an unknown command with BAD
	// and BYE and closes the connection, against cross-protocol attacks
	// (an HTTP request sent to the IMAP port): deliberate.
	pre := ts.raw()
	pre.write("GET / HTTP/1.1\r\n")
	l1 := pre.readLine()
	if !strings.Contains(l1, "BAD") && !strings.Contains(l1, "BYE") {
		t.Errorf("HTTP request: %q", l1)
	}
	// Known commands with bad arguments keep the connection.
	pre2 := ts.raw()
	rejects(t, pre2, `LOGIN`)
	rejects(t, pre2, `AUTHENTICATE`)
	pre2.ok(`LOGIN alice "secret pw"`)
}
