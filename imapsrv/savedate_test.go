package imapsrv_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

var saveDateRE = regexp.MustCompile(`SAVEDATE "([^"]+)"`)

// saveDate returns the SAVEDATE in lines, failing if there is none.
func saveDate(t *testing.T, lines []string) time.Time {
	t.Helper()
	for _, l := range lines {
		if m := saveDateRE.FindStringSubmatch(l); m != nil {
			d, err := time.Parse("_2-Jan-2006 15:04:05 -0700", m[1])
			if err != nil {
				t.Fatalf("SAVEDATE %q: %v", m[1], err)
			}
			return d
		}
	}
	t.Fatalf("no SAVEDATE in %q", lines)
	return time.Time{}
}

// TestSaveDate replays RFC 8514's examples: FETCH SAVEDATE is when the
// message was saved to the mailbox, not its internal date (an APPEND
// with a date from 2018 is saved today); SEARCH SAVEDON / SAVEDSINCE /
// SAVEDBEFORE compare dates only; SAVEDATESUPPORTED matches every
// message, as every mailbox keeps save dates; COPY and MOVE save anew.
func TestSaveDate(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	if !capsOf(t, rc.ok("CAPABILITY"))["SAVEDATE"] {
		t.Fatal("SAVEDATE not advertised")
	}
	rc.ok("create foo")
	before := time.Now().Truncate(time.Second)
	msg := simpleMessage("savedate", "hello")
	rc.write(fmt.Sprintf("a1 APPEND INBOX \"20-Mar-2018 03:07:37 +1100\" {%d+}\r\n%s\r\n", len(msg), msg))
	if _, st := rc.readUntilTagged("a1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND: %q", st)
	}
	rc.ok("SELECT INBOX")
	lines := rc.ok("FETCH 1 (INTERNALDATE SAVEDATE)")
	mustContain(t, lines, `INTERNALDATE "20-Mar-2018 03:07:37 +1100"`)
	saved := saveDate(t, lines)
	if saved.Before(before) || saved.After(time.Now()) {
		t.Fatalf("SAVEDATE %v, want between %v and now", saved, before)
	}
	today := saved.UTC().Format("2-Jan-2006")
	tomorrow := saved.UTC().AddDate(0, 0, 1).Format("2-Jan-2006")
	for _, c := range []struct{ search, want string }{
		{"SAVEDON " + today, "* SEARCH 1"},
		{"SAVEDSINCE " + today, "* SEARCH 1"},
		{"SAVEDBEFORE " + today, "* SEARCH"},
		{"SAVEDBEFORE " + tomorrow, "* SEARCH 1"},
		{"SAVEDSINCE " + tomorrow, "* SEARCH"},
		{"SAVEDON 20-Mar-2018", "* SEARCH"},
		{"ON 20-Mar-2018", "* SEARCH 1"}, // the internal date is another matter
		{"SAVEDATESUPPORTED", "* SEARCH 1"},
		{"NOT SAVEDATESUPPORTED", "* SEARCH"},
		{"SAVEDSINCE 1-Jan-2000 SAVEDBEFORE 1-Jan-2001", "* SEARCH"},
	} {
		if l := mustContain(t, rc.ok("SEARCH "+c.search), "* SEARCH"); l != c.want {
			t.Errorf("SEARCH %s: %q, want %q", c.search, l, c.want)
		}
	}
	// A copy is saved when it is made. Wait for the clock's next second
	// so that the dates differ.
	time.Sleep(time.Until(saved.Add(1100 * time.Millisecond)))
	rc.ok("COPY 1 foo")
	rc.ok("MOVE 1 INBOX") // a MOVE into the mailbox itself: a new message
	movedLines := rc.ok("UID FETCH 2 (SAVEDATE)")
	if moved := saveDate(t, movedLines); !moved.After(saved) {
		t.Errorf("SAVEDATE after MOVE: %v, not after the APPEND's %v", moved, saved)
	}
	rc.ok("SELECT foo")
	if copied := saveDate(t, rc.ok("FETCH 1 (SAVEDATE)")); !copied.After(saved) {
		t.Errorf("SAVEDATE of a COPY: %v, not after the APPEND's %v", copied, saved)
	}
	mustContain(t, rc.ok("FETCH 1 (INTERNALDATE)"), `INTERNALDATE "20-Mar-2018 03:07:37 +1100"`)
	// A delivered message's save date is its arrival.
	ts.deliver("alice", "foo", simpleMessage("delivered", "x"))
	rc.ok("NOOP")
	mustContain(t, rc.ok("SEARCH SAVEDON "+time.Now().UTC().Format("2-Jan-2006")), "* SEARCH 1 2")
	rejects(t, rc, "SEARCH SAVEDON 32-Jan-2019")
	rejects(t, rc, "SEARCH SAVEDBEFORE")
	rejects(t, rc, "FETCH 1 (SAVEDATE")
}
