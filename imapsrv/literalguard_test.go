package imapsrv_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"certmail/imapsrv"
)

// injected is literal data that would run commands if read as commands.
const injected = "z1 CREATE Injected\r\nz2 DELETE Archive\r\n"

// expectClosed reads until the connection closes, failing if a line
// shows a command from the literal's data ran, or if it stays open.
func expectClosed(t *testing.T, rc *rawClient, what string) []string {
	t.Helper()
	var lines []string
	for {
		l, err := rc.tryReadLine(3 * time.Second)
		if err != nil {
			if strings.Contains(err.Error(), "timeout") {
				t.Fatalf("%s: connection still open after %q", what, lines)
			}
			return lines
		}
		lines = append(lines, l)
		if strings.HasPrefix(l, "z1 ") || strings.HasPrefix(l, "z2 ") || strings.HasPrefix(l, "z3 ") {
			t.Fatalf("%s: literal data ran as a command: %q", what, lines)
		}
	}
}

func checkNotInjected(t *testing.T, ts *testServer) {
	t.Helper()
	rc := ts.rawLogin("alice")
	checkNames(t, "after injection attempt", rc.ok(`LIST "" "*"`), defaultNames...)
}

// TestRefusedLiteralNotRun: the data of a non-synchronizing literal the
// server refuses is never read as commands; the connection is closed
// instead (RFC 7888 section 4 allows either).
func TestRefusedLiteralNotRun(t *testing.T) {
	ts := newTestServer(t, withAppendLimit(100))
	ts.addUser("alice")

	// APPEND over APPENDLIMIT.
	rc := ts.rawLogin("alice")
	data := injected + strings.Repeat("x", 200)
	rc.write(fmt.Sprintf("a1 APPEND INBOX {%d+}\r\n%s\r\n", len(data), data))
	lines := expectClosed(t, rc, "APPEND over the limit")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "a1 NO [TOOBIG]") {
		t.Errorf("APPEND over the limit: %q", lines)
	}
	checkNotInjected(t, ts)

	// Over 4096 bytes in another command.
	rc = ts.rawLogin("alice")
	data = injected + strings.Repeat("y", 5000)
	rc.write(fmt.Sprintf("a2 CREATE {%d+}\r\n%s\r\n", len(data), data))
	expectClosed(t, rc, "CREATE with a big literal")
	checkNotInjected(t, ts)

	// An APPEND refused for its flags, before the literal was looked at.
	rc = ts.rawLogin("alice")
	data = injected
	rc.write(fmt.Sprintf("a3 APPEND INBOX (\\Seen \"bad\") {%d+}\r\n%s\r\n", len(data), data))
	expectClosed(t, rc, "APPEND with bad flags")
	checkNotInjected(t, ts)

	// An unknown command with a literal.
	rc = ts.rawLogin("alice")
	rc.write(fmt.Sprintf("a4 XFROB {%d+}\r\n%s\r\n", len(injected), injected))
	expectClosed(t, rc, "unknown command with a literal")
	checkNotInjected(t, ts)

	// Before authentication.
	rc = ts.raw()
	data = injected + strings.Repeat("w", 5000)
	rc.write(fmt.Sprintf("a5 LOGIN {%d+}\r\n%s\r\n", len(data), data))
	expectClosed(t, rc, "LOGIN with a big literal")
	checkNotInjected(t, ts)
}

// TestAcceptedLiteralsPass: literals the server accepts, whatever they
// contain, reach it intact, and server output that looks like protocol
// (inside FETCH literals) does not confuse the guard.
func TestAcceptedLiteralsPass(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	tricky := "Subject: tricky\r\n\r\n" + injected + "+ go ahead\r\nt99 OK done\r\n* 1 EXISTS\r\nline {5}\r\nabcde\r\nend {3+}\r\n"
	for i := 0; i < 3; i++ {
		// Synchronizing, non-synchronizing, and pipelined.
		switch i {
		case 0:
			if _, st := rc.appendRaw("INBOX", tricky); !strings.HasPrefix(st, "OK") {
				t.Fatalf("APPEND: %q", st)
			}
		case 1:
			rc.write(fmt.Sprintf("b1 APPEND INBOX {%d+}\r\n%s\r\n", len(tricky), tricky))
			if _, st := rc.readUntilTagged("b1"); !strings.HasPrefix(st, "OK") {
				t.Fatalf("APPEND {n+}: %q", st)
			}
		case 2:
			rc.write(fmt.Sprintf("b2 APPEND INBOX {%d+}\r\n%s\r\nb3 NOOP\r\nb4 APPEND INBOX {%d+}\r\n%s\r\n",
				len(tricky), tricky, len(tricky), tricky))
			for _, tag := range []string{"b2", "b3", "b4"} {
				if _, st := rc.readUntilTagged(tag); !strings.HasPrefix(st, "OK") {
					t.Fatalf("%s: %q", tag, st)
				}
			}
		}
	}
	checkNotInjected(t, ts)
	rc.ok(`SELECT INBOX`)
	for i := 0; i < 3; i++ {
		f := rc.ok(`FETCH 1:* (BODY.PEEK[] BODY.PEEK[HEADER] ENVELOPE)`)
		if len(f) != 4 {
			t.Fatalf("FETCH: %q", f)
		}
		for _, l := range f {
			if !strings.Contains(l, tricky) {
				t.Errorf("stored message differs: %q", l)
			}
		}
		// A synchronizing literal after all that still works.
		rc.write("c1 SEARCH BODY {5}\r\n")
		if l := rc.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("continuation after FETCH: %q", l)
		}
		rc.write("t99 O\r\n")
		untagged, st := rc.readUntilTagged("c1")
		if !strings.HasPrefix(st, "OK") || len(untagged) != 1 || untagged[0] != "* SEARCH 1 2 3 4" {
			t.Errorf("SEARCH with a literal: %q %q", untagged, st)
		}
		// Several literals in one command.
		rc.write("c2 LIST {0}\r\n")
		rc.readLine()
		rc.write(" {5}\r\n")
		rc.readLine()
		rc.write("INBOX\r\n")
		if u, st := rc.readUntilTagged("c2"); !strings.HasPrefix(st, "OK") || len(u) != 1 {
			t.Errorf("LIST with literals: %q %q", u, st)
		}
		rc.write("c3 LIST {0+}\r\n {5+}\r\nINBOX\r\n")
		if u, st := rc.readUntilTagged("c3"); !strings.HasPrefix(st, "OK") || len(u) != 1 {
			t.Errorf("LIST with non-synchronizing literals: %q %q", u, st)
		}
	}
	// A refused synchronizing literal leaves the connection usable: the
	// client never sends the data.
	rc.write(fmt.Sprintf("d1 APPEND Nowhere {%d}\r\n", len(tricky)))
	if l := rc.readLine(); !strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "d1 NO") {
		t.Fatalf("APPEND to a missing mailbox: %q", l)
	} else if strings.HasPrefix(l, "+") {
		rc.write(tricky + "\r\n")
		if _, st := rc.readUntilTagged("d1"); !strings.HasPrefix(st, "NO") {
			t.Fatalf("APPEND to a missing mailbox: %q", st)
		}
	}
	rc.alive()
}

// TestBigSyncLiteralDoesNotHang: a synchronizing literal over 4096 bytes
// outside APPEND is refused at once with NO [TOOBIG] (go-imap used to
// neither accept nor refuse it, leaving the client waiting for "+" until
// the read timeout; third_party/go-imap is patched), and the connection
// stays usable: the client never sent the data.
func TestBigSyncLiteralDoesNotHang(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.write("e1 CREATE {99999}\r\n")
	l, err := rc.tryReadLine(5 * time.Second)
	if err != nil || !strings.HasPrefix(l, "e1 NO [TOOBIG]") {
		t.Fatalf("CREATE {99999}: %q %v", l, err)
	}
	rc.alive()
	checkNotInjected(t, ts)
}

// TestRefusedLiteralNotRunAfterSTARTTLS: after STARTTLS the connection no
// longer passes through the literal guard, so go-imap itself must refuse
// an over-limit non-synchronizing literal without running its data
// (third_party/go-imap, refuseNonSyncLiteral).
func TestRefusedLiteralNotRunAfterSTARTTLS(t *testing.T) {
	ts := newTestServer(t, withAppendLimit(100), func(o *imapsrv.Options) { o.TLSConfig = testTLSConfig(t) })
	ts.addUser("alice")
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := rawDial(t, conn)
	rc.ok("STARTTLS")
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	rc.conn, rc.br = tc, bufio.NewReader(tc)
	rc.ok(`LOGIN alice "secret pw"`)
	data := injected + strings.Repeat("x", 200)
	rc.write(fmt.Sprintf("a1 APPEND INBOX {%d+}\r\n%s\r\n", len(data), data))
	lines := expectClosed(t, rc, "APPEND over the limit after STARTTLS")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "a1 NO [TOOBIG]") {
		t.Errorf("APPEND over the limit after STARTTLS: %q", lines)
	}
	checkNotInjected(t, ts)
}
