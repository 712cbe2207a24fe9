package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"
)

// announcedBefore checks that, in lines, a FLAGS response listing kw
// comes before the first FETCH showing it, and (unless readOnly) an OK
// [PERMANENTFLAGS] listing it too: RFC 3501 7.2.6 has the client learn of
// a keyword from FLAGS before any FETCH shows it. imaptest's stress mode
// reports "Keyword used without being in FLAGS" otherwise.
func announcedBefore(t *testing.T, what string, lines []string, kw string, readOnly bool) {
	t.Helper()
	flags, perm, fetch := -1, -1, -1
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "* FLAGS (") && strings.Contains(l, kw) && flags < 0:
			flags = i
		case strings.HasPrefix(l, "* OK [PERMANENTFLAGS (") && strings.Contains(l, kw) && perm < 0:
			perm = i
		case strings.Contains(l, " FETCH (") && strings.Contains(l, kw) && fetch < 0:
			fetch = i
		}
	}
	if flags < 0 || (fetch >= 0 && flags > fetch) {
		t.Errorf("%s: no FLAGS with %s before the FETCH showing it:\n%s", what, kw, strings.Join(lines, "\n"))
	}
	if readOnly {
		if perm >= 0 {
			t.Errorf("%s: PERMANENTFLAGS sent to a read-only session:\n%s", what, strings.Join(lines, "\n"))
		}
	} else if perm < 0 || (fetch >= 0 && perm > fetch) || !strings.Contains(lines[perm], `\*`) {
		t.Errorf("%s: no PERMANENTFLAGS with %s and \\* before the FETCH:\n%s", what, kw, strings.Join(lines, "\n"))
	}
}

func TestKeywordAnnouncedInFlags(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 3)
	a := ts.rawLogin("alice")
	a.ok(`SELECT INBOX`)
	b := ts.rawLogin("alice")
	b.ok(`SELECT INBOX`)
	c := ts.rawLogin("alice")
	c.ok(`SELECT INBOX`)
	ro := ts.rawLogin("alice")
	ro.ok(`EXAMINE INBOX`)

	// The storing session: FLAGS and PERMANENTFLAGS before its STORE's
	// own FETCH, and not again once known.
	up := a.ok(`STORE 1 +FLAGS ($New1)`)
	announcedBefore(t, "STORE", up, "$New1", false)
	mustContain(t, up, `* 1 FETCH (`, `$New1`)
	if again := a.ok(`STORE 2 +FLAGS ($New1)`); len(grep(again, "* FLAGS")) != 0 {
		t.Errorf("FLAGS repeated for a known keyword: %q", again)
	}
	// Another session: through NOOP, FLAGS before the unsolicited FETCH.
	announcedBefore(t, "NOOP", b.ok(`NOOP`), "$New1", false)
	// A session that FETCHes before it polls: FLAGS inside its FETCH's
	// response, before the FETCH lines.
	up = c.ok(`FETCH 1:3 (FLAGS)`)
	announcedBefore(t, "FETCH", up, "$New1", false)
	// The read-only session gets FLAGS but no PERMANENTFLAGS.
	announcedBefore(t, "EXAMINE FETCH", ro.ok(`FETCH 1 (FLAGS)`), "$New1", true)

	// A message appended with a keyword, by a session without the
	// mailbox selected.
	d := ts.rawLogin("alice")
	msg := simpleMessage("kw", "body")
	d.write(fmt.Sprintf("x1 APPEND INBOX ($Appended) {%d}\r\n", len(msg)))
	if l := d.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: %q", l)
	}
	d.write(msg + "\r\n")
	if _, st := d.readUntilTagged("x1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND: %s", st)
	}
	up = b.ok(`FETCH 1:* (FLAGS)`)
	announcedBefore(t, "APPEND then FETCH", up, "$Appended", false)
	announcedBefore(t, "APPEND then NOOP", a.ok(`NOOP`), "$Appended", false)

	// IDLE: the FLAGS comes inside the idle, before the FETCH.
	b.write("i1 IDLE\r\n")
	if l := b.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	a.ok(`STORE 3 +FLAGS ($Idle)`)
	var idled []string
	for len(grep(idled, "FETCH")) == 0 {
		idled = append(idled, b.readLine())
	}
	b.write("DONE\r\n")
	rest, _ := b.readUntilTagged("i1")
	announcedBefore(t, "IDLE", append(idled, rest...), "$Idle", false)

	// A later SELECT lists every keyword.
	mustContain(t, c.ok(`SELECT INBOX`), `* FLAGS (`, `$New1`, `$Appended`, `$Idle`)
}
