package imapsrv_test

import (
	"strings"
	"testing"
)

func TestLogin(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")

	rc := ts.raw()
	rc.ok(`LOGIN alice "secret pw"`)
	rc.ok("SELECT INBOX")

	// Lower-case command names and a case-insensitive user name, as
	// clients and users type them.
	rc2 := ts.raw()
	rc2.ok(`login ALICE "secret pw"`)

	// Wrong password and unknown user look the same.
	rc3 := ts.raw()
	st := rc3.fail("NO", `LOGIN alice wrong`)
	if !strings.Contains(st, "[AUTHENTICATIONFAILED]") {
		t.Errorf("wrong password: %q", st)
	}
	st = rc3.fail("NO", `LOGIN nobody "secret pw"`)
	if !strings.Contains(st, "[AUTHENTICATIONFAILED]") {
		t.Errorf("unknown user: %q", st)
	}
	// An invalid account name (not even a name we could create) too.
	st = rc3.fail("NO", `LOGIN "bad name/x" "secret pw"`)
	if !strings.Contains(st, "[AUTHENTICATIONFAILED]") {
		t.Errorf("bad user name: %q", st)
	}
	// The connection survives failures and can then log in.
	rc3.ok(`LOGIN alice "secret pw"`)

	// Literal password, as clients send passwords with special characters.
	rc4 := ts.raw()
	rc4.write("a1 LOGIN alice {9}\r\n")
	if l := rc4.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("literal continuation: %q", l)
	}
	rc4.write("secret pw\r\n")
	if _, st := rc4.readUntilTagged("a1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("LOGIN with literal: %q", st)
	}

	// Commands that need authentication are refused before it, and the
	// connection survives.
	rc5 := ts.raw()
	rc5.fail("BAD", "SELECT INBOX")
	rc5.fail("BAD", "LIST \"\" \"*\"")
	rc5.alive()

	// LOGIN twice is refused.
	rc.fail("BAD", `LOGIN alice "secret pw"`)

	// The go-imap client agrees.
	c := ts.dial()
	if err := c.Login("alice", "nope").Wait(); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if err := c.Login("alice", testPassword).Wait(); err != nil {
		t.Fatal(err)
	}

	// LOGOUT says BYE and OK.
	untagged := rc2.ok("LOGOUT")
	mustContain(t, untagged, "* BYE")
}

// TestCapability checks the advertised capabilities: exactly what the
// server implements.
