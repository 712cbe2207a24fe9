package imapsrv_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"certmail/authguard"
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
	// An empty challenge is "+ " (RFC 9051 7.5 continue-req, the
	// example in 6.2.2), not "+ =".
	if l := rc2.readLine(); l != "+ " {
		t.Fatalf("want the empty continuation request %q, got %q", "+ ", l)
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

// TestAuthenticateMalformed: a malformed AUTHENTICATE PLAIN is the
// client's error, never NO [SERVERBUG]: a response that is not base64 (on
// the command line or on its own) or too long for a line is BAD, as RFC
// 9051 section 6.2.2 requires; a PLAIN message with missing fields, NULs
// in the wrong places or over-long fields is NO [AUTHENTICATIONFAILED].
// Each counts as a failed login of the client's address (the lockout
// after exactly that many shows it), logged with that address, and the
// connection goes on.
func TestAuthenticateMalformed(t *testing.T) {
	badBase64 := []string{"!!!notbase64", "=AAA", "AAA=BBB", "YWxpY2U", "YW*j"}
	badPlain := []string{
		"alice\x00" + testPassword,              // a field missing
		"\x00alice\x00" + testPassword + "\x00", // a NUL too many
		"\x00\x00alice\x00" + testPassword,      // NUL first
		"\x00alice\x00",                         // empty password
		"\x00\x00" + testPassword,               // empty user
		"",                                      // nothing ("=")
		"\x00alice\x00" + strings.Repeat("p", 2000),     // over-long
		"\x00alice\xff\x00" + testPassword,              // not UTF-8
		strings.Repeat("z", 2000) + "\x00alice\x00x",    // over-long authzid
		"\x00" + strings.Repeat("a", 3000) + "\x00pass", // over-long user
	}
	n := len(badBase64)*2 + len(badPlain) + 1
	ts := newTestServerAuth(t, &authguard.Policy{MaxFailures: n, Lockout: time.Minute})
	ts.addUser("alice")
	rc := ts.raw()
	check := func(what, st, want string) {
		t.Helper()
		if !strings.HasPrefix(st, want) || strings.Contains(st, "SERVERBUG") {
			t.Errorf("%s: got %q, want %s", what, st, want)
		}
	}
	for _, s := range badBase64 {
		_, st := rc.cmd("AUTHENTICATE PLAIN " + s)
		check("initial response "+s, st, "BAD")
		// The same on a line of its own.
		rc.write("c1 AUTHENTICATE PLAIN\r\n")
		if l := rc.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("want a continuation request, got %q", l)
		}
		rc.write(s + "\r\n")
		_, st = rc.readUntilTagged("c1")
		check("response "+s, st, "BAD")
	}
	for _, m := range badPlain {
		resp := b64(m)
		if m == "" {
			resp = "="
		}
		_, st := rc.cmd("AUTHENTICATE PLAIN " + resp)
		check(fmt.Sprintf("PLAIN message %q", m), st, "NO [AUTHENTICATIONFAILED]")
	}
	// A response line longer than the server reads at once: BAD, and the
	// rest of it is not taken for commands ("t1 LOGOUT" would be one).
	rc.write("c2 AUTHENTICATE PLAIN\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("want a continuation request, got %q", l)
	}
	rc.write(strings.Repeat("QUFB", 3000) + " t1 LOGOUT\r\n")
	_, st := rc.readUntilTagged("c2")
	check("over-long response line", st, "BAD")
	rc.alive()
	// Every one was counted: the address is now locked, right password
	// or not.
	rc.fail("NO [AUTHENTICATIONFAILED] too many failed logins", `LOGIN alice "`+testPassword+`"`)
	logs := ts.logs.String()
	if !strings.Contains(logs, "login locked out") || !strings.Contains(logs, "remote=127.0.0.1:") ||
		!strings.Contains(logs, "malformed AUTHENTICATE") {
		t.Errorf("no lockout logged with the address and the reason:\n%s", logs)
	}
	if strings.Contains(logs, "Internal server error") || strings.Contains(logs, "handling AUTHENTICATE") {
		t.Errorf("logged as a server fault:\n%s", logs)
	}
}
