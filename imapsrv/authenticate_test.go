package imapsrv_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthenticatePlain(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")

	// SASL-IR: the initial response on the command line.
	rc := ts.raw()
	rc.ok("AUTHENTICATE PLAIN " + b64("\x00alice\x00"+testPassword))
	rc.ok("SELECT INBOX")

	// Without an initial response, as Thunderbird sends it: the server
	// must prompt with "+ " and accept the response on the next line.
	rc2 := ts.raw()
	rc2.write("a1 authenticate plain\r\n")
	if l := rc2.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("want a continuation request, got %q", l)
	}
	rc2.write(b64("\x00alice\x00"+testPassword) + "\r\n")
	if _, st := rc2.readUntilTagged("a1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("AUTHENTICATE PLAIN: %q", st)
	}
	rc2.ok("SELECT INBOX")

	// With an authorization identity equal to the user.
	rc3 := ts.raw()
	rc3.ok("AUTHENTICATE PLAIN " + b64("alice\x00alice\x00"+testPassword))

	// Wrong password.
	rc4 := ts.raw()
	st := rc4.fail("NO", "AUTHENTICATE PLAIN "+b64("\x00alice\x00wrong"))
	if !strings.Contains(st, "AUTHENTICATIONFAILED") {
		t.Errorf("wrong password: %q", st)
	}
	// Impersonation: authorization identity of another user.
	ts.addUser("bob")
	st = rc4.fail("NO", "AUTHENTICATE PLAIN "+b64("bob\x00alice\x00"+testPassword))
	_ = st
	// Garbage base64 is a BAD or NO; the connection survives.
	if _, st := rc4.cmd("AUTHENTICATE PLAIN !!!notbase64"); strings.HasPrefix(st, "OK") {
		t.Errorf("garbage SASL response accepted: %q", st)
	}
	rc4.alive()
	// Client cancels with "*".
	rc4.write("a9 AUTHENTICATE PLAIN\r\n")
	if l := rc4.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("want a continuation request, got %q", l)
	}
	rc4.write("*\r\n")
	if _, st := rc4.readUntilTagged("a9"); !strings.HasPrefix(st, "BAD") && !strings.HasPrefix(st, "NO") {
		t.Errorf("cancelled AUTHENTICATE: %q", st)
	}
	rc4.alive()
	// Unknown mechanism.
	if _, st := rc4.cmd("AUTHENTICATE CRAM-MD5"); strings.HasPrefix(st, "OK") {
		t.Errorf("unknown mechanism accepted: %q", st)
	}
	rc4.alive()

	// The go-imap client's SASL.
	c := ts.dial()
	if err := c.Authenticate(sasl.NewPlainClient("", "alice", testPassword)); err != nil {
		t.Fatal(err)
	}
	c.selectBox("INBOX")
}
