package imapsrv_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"certmail/imapsrv"
)

var (
	mailboxIDRE = regexp.MustCompile(`MAILBOXID \(([A-Za-z0-9_-]{1,255})\)`)
	emailIDRE   = regexp.MustCompile(`EMAILID \(([A-Za-z0-9_-]{1,255})\)`)
)

// objectID returns the id re finds in lines, failing if there is none.
func objectID(t *testing.T, re *regexp.Regexp, lines ...string) string {
	t.Helper()
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %s in %q", re, lines)
	return ""
}

// TestObjectIDMailboxID replays RFC 8474 section 4's examples: CREATE
// answers the new mailbox's MAILBOXID, a second CREATE of the name fails,
// RENAME keeps the id (STATUS (MAILBOXID) shows it), SELECT and EXAMINE
// send it, and a mailbox deleted and created again gets another.
func TestObjectIDMailboxID(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	if !capsOf(t, rc.ok("CAPABILITY"))["OBJECTID"] {
		t.Fatal("OBJECTID not advertised")
	}
	_, st := rc.cmd("create foo")
	foo := objectID(t, mailboxIDRE, st)
	if !strings.HasPrefix(st, "OK [MAILBOXID (") {
		t.Fatalf("CREATE foo: %q", st)
	}
	_, st = rc.cmd("create bar")
	bar := objectID(t, mailboxIDRE, st)
	if foo == bar {
		t.Fatalf("foo and bar share MAILBOXID %s", foo)
	}
	rc.fail("NO", "create foo")
	rc.ok("rename foo renamed")
	if got := objectID(t, mailboxIDRE, mustContain(t, rc.ok("status renamed (mailboxid)"), `* STATUS "renamed" (MAILBOXID (`)); got != foo {
		t.Errorf("MAILBOXID after RENAME: %s, want %s", got, foo)
	}
	if got := objectID(t, mailboxIDRE, rc.ok("status bar (mailboxid)")...); got != bar {
		t.Errorf("STATUS bar: %s, want %s", got, bar)
	}
	// LIST-STATUS (RFC 5819) carries it too.
	if got := objectID(t, mailboxIDRE, mustContain(t, rc.ok(`LIST "" "renamed" RETURN (STATUS (MAILBOXID))`), "* STATUS")); got != foo {
		t.Errorf("LIST RETURN (STATUS (MAILBOXID)): %s, want %s", got, foo)
	}
	// Other items beside it.
	mustContain(t, rc.ok("status bar (messages mailboxid uidnext)"), "MESSAGES 0", "MAILBOXID ("+bar+")", "UIDNEXT 1")
	for _, cmd := range []string{"select renamed", "examine renamed"} {
		line := mustContain(t, rc.ok(cmd), "* OK [MAILBOXID (")
		if got := objectID(t, mailboxIDRE, line); got != foo {
			t.Errorf("%s: MAILBOXID %s, want %s", cmd, got, foo)
		}
	}
	inbox := objectID(t, mailboxIDRE, rc.ok("select INBOX")...)
	if inbox == foo || inbox == bar {
		t.Errorf("INBOX shares a MAILBOXID: %s", inbox)
	}
	// RENAME INBOX: certmail renames the mailbox, its messages and UIDs
	// with it (same UIDVALIDITY), and makes a new, empty INBOX. The
	// MAILBOXID follows the messages; the new INBOX gets a new one.
	_, st = rc.cmd("rename INBOX oldinbox")
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("RENAME INBOX: %q", st)
	}
	if got := objectID(t, mailboxIDRE, rc.ok("status oldinbox (mailboxid)")...); got != inbox {
		t.Errorf("INBOX renamed: MAILBOXID %s, want INBOX's %s", got, inbox)
	}
	if got := objectID(t, mailboxIDRE, rc.ok("status INBOX (mailboxid)")...); got == inbox || got == foo || got == bar {
		t.Errorf("the new INBOX reuses MAILBOXID %s", got)
	}
	rc.ok("delete bar")
	_, st = rc.cmd("create bar")
	if got := objectID(t, mailboxIDRE, st); got == bar {
		t.Errorf("bar deleted and created again kept MAILBOXID %s", bar)
	}
	// Stable across sessions and restarts: derived from the store.
	ts.restart()
	rc = ts.rawLogin("alice")
	if got := objectID(t, mailboxIDRE, rc.ok("status renamed (mailboxid)")...); got != foo {
		t.Errorf("MAILBOXID after a restart: %s, want %s", got, foo)
	}
	// An account deleted and made again under its name has other ids
	// (acctgone/ keeps its next mailbox ID).
	rc.ok("logout")
	if err := ts.store.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	ts.addUser("alice")
	rc = ts.rawLogin("alice")
	if got := objectID(t, mailboxIDRE, rc.ok("select INBOX")...); got == inbox {
		t.Errorf("a new account's INBOX has the deleted one's MAILBOXID %s", got)
	}
	// A CREATE that fails says so, without an id.
	if st := rc.fail("NO", "create INBOX"); strings.Contains(st, "MAILBOXID") {
		t.Errorf("failed CREATE: %q", st)
	}
}

// TestObjectIDEmailID replays RFC 8474 section 5.1's example: a message
// keeps its EMAILID through MOVE (and COPY, as the RFC recommends); the
// same bytes appended again are another message with another EMAILID;
// SEARCH EMAILID finds the message (section 6).
func TestObjectIDEmailID(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok("create foo")
	rc.ok("create bar")
	msg := simpleMessage("objectid", "hello")
	for i := 0; i < 2; i++ {
		rc.write(fmt.Sprintf("a%d append inbox \"20-Mar-2018 03:07:37 +1100\" {%d+}\r\n%s\r\n", i, len(msg), msg))
		if _, st := rc.readUntilTagged(fmt.Sprintf("a%d", i)); !strings.HasPrefix(st, "OK") {
			t.Fatalf("APPEND: %q", st)
		}
	}
	rc.ok("select inbox")
	first := objectID(t, emailIDRE, mustContain(t, rc.ok("uid fetch 1 (emailid)"), "* 1 FETCH (UID 1 EMAILID ("))
	second := objectID(t, emailIDRE, rc.ok("uid fetch 2 (emailid)")...)
	if first == second {
		t.Errorf("two APPENDs share EMAILID %s", first)
	}
	mustContain(t, rc.ok("search emailid "+first), "* SEARCH 1")
	mustContain(t, rc.ok("uid search emailid "+second), "* SEARCH 2")
	if l := mustContain(t, rc.ok("search emailid M0"), "* SEARCH"); l != "* SEARCH" {
		t.Errorf("SEARCH EMAILID of no message: %q", l)
	}
	if l := mustContain(t, rc.ok("search or emailid "+first+" emailid "+second), "* SEARCH"); l != "* SEARCH 1 2" {
		t.Errorf("SEARCH OR EMAILID: %q", l)
	}
	rc.ok("uid copy 1 bar")
	rc.ok("uid move 1 foo")
	for _, box := range []string{"foo", "bar"} {
		rc.ok("select " + box)
		if got := objectID(t, emailIDRE, rc.ok("uid fetch 1 (emailid)")...); got != first {
			t.Errorf("EMAILID in %s after MOVE/COPY: %s, want %s", box, got, first)
		}
		mustContain(t, rc.ok("search emailid "+first), "* SEARCH 1")
	}
	// Malformed ids are the client's mistake.
	rejects(t, rc, "search emailid a.b")
	rejects(t, rc, "search emailid")
	rejects(t, rc, "search threadid ("+first+")")
	rejects(t, rc, "search emailid "+strings.Repeat("x", 256))
}

// TestObjectIDThreadIDNil: certmail keeps no thread ids yet, so FETCH
// THREADID is NIL (RFC 8474 5.2 allows it) and SEARCH THREADID finds
// nothing.
func TestObjectIDThreadIDNil(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)
	rc := ts.rawLogin("alice")
	rc.ok("select inbox")
	lines := rc.ok("fetch 1:2 (threadid emailid)")
	mustContain(t, lines, "* 1 FETCH (", "THREADID NIL", "EMAILID (")
	mustContain(t, lines, "* 2 FETCH (", "THREADID NIL", "EMAILID (")
	if l := mustContain(t, rc.ok("search threadid T64b478a75b7ea9"), "* SEARCH"); l != "* SEARCH" {
		t.Errorf("SEARCH THREADID: %q", l)
	}
	if l := mustContain(t, rc.ok("search not threadid T1"), "* SEARCH"); l != "* SEARCH 1 2" {
		t.Errorf("SEARCH NOT THREADID: %q", l)
	}
}

// TestObjectIDEmailIDOfBlob: the EMAILID a test outside the package
// (certified's stub-leak tests) computes is the one FETCH shows.
func TestObjectIDEmailIDOfBlob(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("one", "x"))
	msgs, err := ts.store.Messages("alice", 1)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("messages: %v %v", msgs, err)
	}
	rc := ts.rawLogin("alice")
	rc.ok("select inbox")
	if got, want := objectID(t, emailIDRE, rc.ok("fetch 1 emailid")...), imapsrv.EmailObjectID(msgs[0].Blob); got != want {
		t.Errorf("EMAILID %s, want %s", got, want)
	}
}

// FuzzSearchObjectID runs SEARCH programs with EMAILID, THREADID and the
// RFC 8514 keys against the real server: every answer is OK, NO or BAD,
// never a server bug, and the connection goes on.
func FuzzSearchObjectID(f *testing.F) {
	for _, seed := range []string{
		`EMAILID M1`, `THREADID T1`, `EMAILID M1 THREADID T2`, `NOT EMAILID M2`, `OR EMAILID M1 EMAILID M2`,
		`EMAILID a.b`, `EMAILID ""`, `EMAILID (M1)`, `THREADID`, `EMAILID ` + strings.Repeat("x", 300),
		`SAVEDBEFORE 1-Jan-2000`, `SAVEDSINCE 1-Jan-2000`, `SAVEDON 20-Mar-2018`, `SAVEDATESUPPORTED`,
		`SAVEDSINCE 32-Jan-2000`, `SAVEDON "1-Jan-2000"`, `NOT SAVEDATESUPPORTED`, `RETURN (COUNT) SAVEDSINCE 1-Jan-1970`,
	} {
		f.Add(seed)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 3)
	f.Fuzz(func(t *testing.T, program string) {
		if strings.ContainsAny(program, "\r\n{") || len(program) > 2000 {
			return // one line, no literal (the server would wait for its data)
		}
		per := *ts
		per.t = t
		rc := per.rawLogin("alice")
		defer rc.conn.Close()
		rc.ok("SELECT INBOX")
		rc.write("F1 SEARCH " + program + "\r\n")
		deadline := time.Now().Add(10 * time.Second)
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: no tagged answer: %v", program, err)
			}
			st, tagged := strings.CutPrefix(l, "F1 ")
			if !tagged {
				continue
			}
			if !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "NO") && !strings.HasPrefix(st, "BAD") || strings.Contains(st, "SERVERBUG") {
				t.Fatalf("%q: answered %q", program, l)
			}
			break
		}
		rc.write("F2 NOOP\r\n")
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: connection gone after it: %v", program, err)
			}
			if strings.HasPrefix(l, "F2 ") {
				if !strings.HasPrefix(l, "F2 OK") {
					t.Fatalf("%q: NOOP after it: %q", program, l)
				}
				return
			}
		}
	})
}
