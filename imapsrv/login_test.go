package imapsrv_test

import (
	"encoding/base64"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

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

// TestCapability checks the advertised capabilities: exactly what the
// server implements.
func TestCapability(t *testing.T) {
	ts := newTestServer(t, withAppendLimit(12345))
	ts.addUser("alice")
	rc := ts.raw()

	// Before authentication: the greeting and CAPABILITY offer LOGIN and
	// AUTH=PLAIN (loopback), and not the post-auth extensions.
	pre := capsOf(t, rc.ok("CAPABILITY"))
	for _, c := range []string{"IMAP4rev1", "IMAP4rev2", "SASL-IR", "AUTH=PLAIN"} {
		if !pre[c] {
			t.Errorf("pre-auth capability %s missing: %v", c, keys(pre))
		}
	}
	if pre["LOGINDISABLED"] {
		t.Errorf("LOGINDISABLED on loopback")
	}
	if !strings.Contains(rc.Greeting, "[CAPABILITY ") {
		t.Errorf("greeting without capabilities: %q", rc.Greeting)
	}

	rc.ok(`LOGIN alice "secret pw"`)
	post := capsOf(t, rc.ok("CAPABILITY"))
	want := []string{"IMAP4rev1", "IMAP4rev2", "IDLE", "MOVE", "UIDPLUS", "NAMESPACE", "UNSELECT",
		"ENABLE", "ESEARCH", "SEARCHRES", "LIST-EXTENDED", "LIST-STATUS", "STATUS=SIZE",
		"SPECIAL-USE", "CREATE-SPECIAL-USE", "LITERAL+", "APPENDLIMIT=12345", "SASL-IR"}
	// Added by go-imap on its own and implemented by it: LITERAL- is
	// implied by LITERAL+ (RFC 7888), UTF8=ACCEPT is handled by the
	// protocol layer (IMAP4rev2 requires UTF-8 anyway), CHILDREN is part
	// of IMAP4rev2 and LIST always returns \HasChildren/\HasNoChildren
	// (checked in TestList).
	allowedExtra := map[string]bool{"LITERAL-": true, "UTF8=ACCEPT": true, "CHILDREN": true}
	for _, c := range want {
		if !post[c] {
			t.Errorf("capability %s missing after login: %v", c, keys(post))
		}
		delete(post, c)
	}
	for c := range post {
		if !allowedExtra[c] {
			t.Errorf("unexpected capability %s advertised", c)
		}
	}
	// AUTH=PLAIN is a pre-authentication capability.
	if !pre["AUTH=PLAIN"] {
		t.Errorf("AUTH=PLAIN not advertised before login")
	}
}

func capsOf(t *testing.T, untagged []string) map[string]bool {
	t.Helper()
	line := mustContain(t, untagged, "* CAPABILITY ")
	out := make(map[string]bool)
	for _, f := range strings.Fields(strings.TrimPrefix(line, "* CAPABILITY ")) {
		out[f] = true
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
