package imapsrv_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"certmail/authguard"
	"certmail/imapsrv"
)

func withLimits(l imapsrv.Limits) serverOption {
	return func(o *imapsrv.Options) { o.Limits = l }
}

// waitFor retries cond for a while: a closed connection is released when
// its session notices, not at once.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// greeting dials addr and returns the first line.
func greeting(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rc := &rawClient{t: t, conn: conn}
	rc.br = bufio.NewReader(conn)
	line, err := rc.tryReadLine(5 * time.Second)
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return conn, line
}

func TestMaxConnectionsPerIP(t *testing.T) {
	ts := newTestServer(t, withLimits(imapsrv.Limits{MaxConnectionsPerIP: 2}))
	c1, g1 := greeting(t, ts.addr)
	_, g2 := greeting(t, ts.addr)
	if !strings.HasPrefix(g1, "* OK") || !strings.HasPrefix(g2, "* OK") {
		t.Fatalf("greetings: %q %q", g1, g2)
	}
	_, g3 := greeting(t, ts.addr)
	if g3 != "* BYE too many connections from your address (limit 2)" {
		t.Fatalf("third connection: %q", g3)
	}
	// Closing one makes room.
	c1.Close()
	waitFor(t, "a free connection slot", func() bool {
		_, g := greeting(t, ts.addr)
		return strings.HasPrefix(g, "* OK")
	})
	if logs := ts.logs.String(); !strings.Contains(logs, "connection refused: too many connections from one address") {
		t.Errorf("no log line:\n%s", logs)
	}
}

func TestLoopbackExemptFromConnectionLimits(t *testing.T) {
	ts := newTestServer(t, withLimits(imapsrv.Limits{MaxConnectionsPerIP: 1, MaxSessionsPerUser: 1, LoopbackExempt: true}),
		func(o *imapsrv.Options) { o.InsecureAuth = true })
	ts.addUser("alice")
	ts.rawLogin("alice")
	ts.rawLogin("alice") // loopback: neither limit counts it
	// A remote address is limited.
	remote := serveExtra(t, ts, false)
	_, g := greeting(t, remote)
	if !strings.HasPrefix(g, "* OK") {
		t.Fatalf("first remote connection: %q", g)
	}
	_, g = greeting(t, remote)
	if !strings.HasPrefix(g, "* BYE too many connections") {
		t.Fatalf("second remote connection: %q", g)
	}
}

func TestMaxSessionsPerUser(t *testing.T) {
	ts := newTestServer(t, withLimits(imapsrv.Limits{MaxSessionsPerUser: 2}))
	ts.addUser("alice")
	ts.addUser("bob")
	a1 := ts.rawLogin("alice")
	ts.rawLogin("alice")
	rc := ts.raw()
	st := rc.fail("NO [LIMIT]", `LOGIN alice "`+testPassword+`"`)
	if !strings.Contains(st, "too many sessions for alice (limit 2)") {
		t.Fatalf("third session: %q", st)
	}
	// SASL goes through the same check.
	rc.fail("NO [LIMIT]", "AUTHENTICATE PLAIN "+b64("\x00alice\x00"+testPassword))
	// Another account is not affected, and the refused connection may
	// still log in as someone else.
	rc.ok(`LOGIN bob "` + testPassword + `"`)
	a1.ok("LOGOUT")
	waitFor(t, "a free session slot", func() bool {
		_, st := ts.raw().cmd(`LOGIN alice "` + testPassword + `"`)
		return strings.HasPrefix(st, "OK")
	})
	if logs := ts.logs.String(); !strings.Contains(logs, "login refused: too many sessions") {
		t.Errorf("no log line:\n%s", logs)
	}
}

// TestFailedLoginLimits: the first failure is answered at once, the next
// ones after a growing delay, and after the third logins are refused,
// even with the right password, until the lockout ends.
func TestFailedLoginLimits(t *testing.T) {
	const delay, lockout = 300 * time.Millisecond, 2 * time.Second
	ts := newTestServerAuth(t, &authguard.Policy{FreeFailures: 1, MaxFailures: 3,
		Delay: delay, Lockout: lockout})
	ts.addUser("alice")
	ts.addUser("bob")
	rc := ts.raw()
	timed := func(line string) (string, time.Duration) {
		start := time.Now()
		_, st := rc.cmd(line)
		return st, time.Since(start)
	}
	// Only lower bounds on the time: an upper one would depend on the
	// machine's load. authguard's TestDelaySchedule checks the exact
	// schedule (the first failure undelayed).
	st, _ := timed(`LOGIN alice wrong1`)
	if !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("first failure: %q", st)
	}
	var d time.Duration
	st, d = timed(`LOGIN alice wrong2`)
	if !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") || d < delay {
		t.Fatalf("second failure: %q after %v, want a delay of %v", st, d, delay)
	}
	st, d = timed(`LOGIN alice wrong3`)
	if !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED] too many failed logins, try again in 2s") || d < 2*delay {
		t.Fatalf("third failure: %q after %v, want a delay of %v", st, d, 2*delay)
	}
	// Locked out: the right password is not even looked at, and the
	// answer is the same AUTHENTICATIONFAILED as for a wrong one.
	start := time.Now()
	for _, line := range []string{`LOGIN alice "` + testPassword + `"`, "AUTHENTICATE PLAIN " + b64("\x00alice\x00"+testPassword)} {
		_, st := rc.cmd(line)
		if !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED] too many failed logins, try again in") {
			t.Fatalf("%s while locked out: %q", line, st)
		}
	}
	// The address is locked out too (not exempt: LoopbackExempt is off).
	ts.raw().fail("NO [AUTHENTICATIONFAILED]", `LOGIN bob "`+testPassword+`"`)
	if logs := ts.logs.String(); !strings.Contains(logs, "login locked out: too many failed logins") ||
		!strings.Contains(logs, "login refused: too many failed logins") {
		t.Errorf("no log lines:\n%s", logs)
	}
	time.Sleep(lockout - time.Since(start) + 100*time.Millisecond)
	rc.ok(`LOGIN alice "` + testPassword + `"`)
}

// TestFailedLoginsPerAccount: failures against one account lock it from
// every address, while other accounts stay open from the same address
// when it is exempt (loopback, as for a local webmail).
func TestFailedLoginsPerAccount(t *testing.T) {
	ts := newTestServerAuth(t, &authguard.Policy{FreeFailures: 0, MaxFailures: 2,
		Delay: 10 * time.Millisecond, Lockout: time.Minute, LoopbackExempt: true},
		func(o *imapsrv.Options) { o.InsecureAuth = true })
	ts.addUser("alice")
	ts.addUser("bob")
	rc := ts.raw()
	rc.fail("NO [AUTHENTICATIONFAILED] Authentication failed", "LOGIN alice x")
	rc.fail("NO [AUTHENTICATIONFAILED] too many failed logins", "LOGIN alice y")
	// From a remote address: alice stays locked, bob is fine.
	remote := serveExtra(t, ts, false)
	conn, _ := greeting(t, remote)
	r := &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
	r.fail("NO [AUTHENTICATIONFAILED] too many failed logins", `LOGIN alice "`+testPassword+`"`)
	r.ok(`LOGIN bob "` + testPassword + `"`)
	// Loopback is exempt per address: bob logs in from there too.
	ts.rawLogin("bob")
}

// TestLoginNameVariantsShareBudget: the lockout counts the account the
// store would log in, so " bob", "bob ", a tab and capitals are all bob
// (each used to get a budget of its own, and one logged in while bob was
// locked).
func TestLoginNameVariantsShareBudget(t *testing.T) {
	ts := newTestServerAuth(t, &authguard.Policy{MaxFailures: 3, Lockout: time.Minute, LoopbackExempt: true})
	ts.addUser("bob")
	rc := ts.raw()
	rc.fail("NO [AUTHENTICATIONFAILED]", `LOGIN " bob" wrong`)
	rc.fail("NO [AUTHENTICATIONFAILED]", `LOGIN "bob " wrong`)
	rc.fail("NO [AUTHENTICATIONFAILED]", "AUTHENTICATE PLAIN "+b64("\x00\tBOB\x00wrong"))
	for _, name := range []string{`"bob"`, `" bob"`, `"bob "`, `"BOB"`, "{4}\r\n\tbob"} {
		line := "LOGIN " + name + ` "` + testPassword + `"`
		if strings.Contains(name, "{4}") {
			// A literal: the tab cannot be in a quoted string.
			rc.write("a1 LOGIN {4}\r\n")
			if l := rc.readLine(); !strings.HasPrefix(l, "+") {
				t.Fatalf("literal: %q", l)
			}
			rc.write("\tbob \"" + testPassword + "\"\r\n")
			if _, st := rc.readUntilTagged("a1"); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED] too many failed logins") {
				t.Fatalf("tab-bob while bob is locked: %q", st)
			}
			continue
		}
		rc.fail("NO [AUTHENTICATIONFAILED] too many failed logins", line)
	}
	rc.fail("NO [AUTHENTICATIONFAILED] too many failed logins", "AUTHENTICATE PLAIN "+b64("\x00 bob\x00"+testPassword))
}

// dialFrom connects to addr from a loopback source address of the test's
// choosing (all of 127.0.0.0/8 is the loopback interface on Linux), so
// that per-address limits can be tested with real sockets.
func dialFrom(t *testing.T, src, addr string) *rawClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing from %s: %v", src, err)
	}
	return rawDial(t, conn)
}

// TestFailedLoginsPerAddress: an address that guesses at many accounts
// (password spraying) is locked for every account, the right password
// included; another address is not.
func TestFailedLoginsPerAddress(t *testing.T) {
	ts := newTestServerAuth(t, &authguard.Policy{MaxFailures: 3, Lockout: time.Minute},
		func(o *imapsrv.Options) { o.InsecureAuth = true })
	ts.addUser("alice")
	sprayer := dialFrom(t, "127.0.0.2", ts.addr)
	for _, u := range []string{"carol", "dave", "erin"} {
		sprayer.fail("NO [AUTHENTICATIONFAILED]", "LOGIN "+u+" guess")
	}
	// A new connection from the same address is locked too.
	dialFrom(t, "127.0.0.2", ts.addr).fail("NO [AUTHENTICATIONFAILED] too many failed logins", `LOGIN alice "`+testPassword+`"`)
	dialFrom(t, "127.0.0.3", ts.addr).ok(`LOGIN alice "` + testPassword + `"`)
}

// TestFailedLoginsMemoryBounded: a flood of logins under random names
// from many addresses does not grow the guard past its bound, and does
// not unlock a locked account.
func TestFailedLoginsMemoryBounded(t *testing.T) {
	const bound = 40
	ts := newTestServerAuth(t, &authguard.Policy{MaxFailures: 3, Lockout: time.Minute, MaxEntries: bound},
		func(o *imapsrv.Options) { o.InsecureAuth = true })
	ts.addUser("bob")
	rc := ts.raw()
	for range 3 {
		rc.fail("NO [AUTHENTICATIONFAILED]", "LOGIN bob guess")
	}
	// 250 addresses, each trying a name of its own: malformed PLAIN
	// messages (counted without a password check, so the flood is
	// cheap) and, every tenth, a real LOGIN.
	for i := range 250 {
		c := dialFrom(t, fmt.Sprintf("127.0.%d.%d", 10+i/200, 1+i%200), ts.addr)
		name := fmt.Sprintf("flood%d", i)
		if i%10 == 0 {
			c.fail("NO [AUTHENTICATIONFAILED]", "LOGIN "+name+" x")
		} else {
			c.fail("NO [AUTHENTICATIONFAILED]", "AUTHENTICATE PLAIN "+b64("\x00"+name+"\x00"))
		}
		c.conn.Close()
	}
	if accts, addrs := ts.guard.Entries(); accts > bound || addrs > bound {
		t.Fatalf("the guard holds %d accounts and %d addresses, bound %d", accts, addrs, bound)
	}
	// From an address of its own, so that only bob's account entry can
	// refuse it.
	dialFrom(t, "127.0.99.1", ts.addr).fail("NO [AUTHENTICATIONFAILED] too many failed logins", `LOGIN bob "`+testPassword+`"`)
}

// TestCommandLineTooLong: a line over 48 KiB (literal data not counted)
// gets a BYE saying why, and the connection is closed before the server
// holds more of it; a long line under the limit and a large literal are
// served.
func TestCommandLineTooLong(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	// 40 KiB of search text: long, but allowed.
	rc.ok("SELECT INBOX")
	rc.ok("SEARCH SUBJECT " + strings.Repeat("x", 40<<10))
	// A 200 KiB message as a literal: its data is no command line.
	msg := "Subject: big\r\n\r\n" + strings.Repeat("y", 200<<10) + "\r\n"
	rc.write(fmt.Sprintf("a1 APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg))
	if _, st := rc.readUntilTagged("a1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND of a large literal: %s", st)
	}
	for _, line := range []string{
		"a2 NOOP " + strings.Repeat("x", 1<<20),            // in the arguments
		strings.Repeat("t", 1<<20) + " NOOP",               // in the tag
		"a3 SEARCH SUBJECT " + strings.Repeat("z", 60<<10), // just over the limit
	} {
		c := ts.rawLogin("alice")
		// The server may close before the whole line is sent.
		c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		go c.conn.Write([]byte(line + "\r\n"))
		var got []string
		for {
			l, err := c.tryReadLine(10 * time.Second)
			if err != nil {
				break
			}
			got = append(got, l)
		}
		if len(got) != 1 || got[0] != "* BYE command line too long (limit 49152 bytes)" {
			t.Fatalf("line of %d bytes: got %q", len(line), got)
		}
	}
	waitFor(t, "the log line", func() bool {
		return strings.Contains(ts.logs.String(), "connection closed: command line too long")
	})
}
