package imapsrv_test

import (
	"fmt"
	"regexp"
	"testing"
	"time"
)

// TestSelectAcrossNodes: a SELECT on node B reports the mailbox as node
// A left it, every time, though B answers the mailbox's record and
// HIGHESTMODSEQ from memory once it holds them (mailbox/reccache.go):
// EXISTS, UIDNEXT, UIDVALIDITY and HIGHESTMODSEQ as STATUS on A gives
// them (and STATUS on B as on A), after an APPEND, a STORE, an EXPUNGE, a \Recent claim and the
// mailbox deleted and made again on A. And on a node that follows
// others, a SELECT of a mailbox it holds costs one round trip, the
// catch-up (it was three: Dovecot's SELECT is faster than two), and so
// does a STATUS (two, three with HIGHESTMODSEQ).
func TestSelectAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	ra, rb, rs := a.rawLogin("alice"), b.rawLogin("alice"), b.rawLogin("alice")
	ra.ok("ENABLE CONDSTORE")
	rb.ok("ENABLE CONDSTORE")
	number := func(lines []string, re string) string {
		t.Helper()
		rx := regexp.MustCompile(re)
		for _, l := range lines {
			if m := rx.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		}
		t.Fatalf("no %s in %q", re, lines)
		return ""
	}
	same := func(step, box string) {
		t.Helper()
		items := fmt.Sprintf("STATUS %s (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ UNSEEN)", box)
		st := ra.ok(items)
		if got, want := mustContain(t, rs.ok(items), "* STATUS"), mustContain(t, st, "* STATUS"); got != want {
			t.Errorf("%s: STATUS on B: %q; on A: %q", step, got, want)
		}
		sel := rb.ok("SELECT " + box)
		for _, f := range []struct{ status, sel string }{
			{`MESSAGES (\d+)`, `^\* (\d+) EXISTS`},
			{`UIDNEXT (\d+)`, `\[UIDNEXT (\d+)\]`},
			{`UIDVALIDITY (\d+)`, `\[UIDVALIDITY (\d+)\]`},
			{`HIGHESTMODSEQ (\d+)`, `\[HIGHESTMODSEQ (\d+)\]`},
		} {
			if got, want := number(sel, f.sel), number(st, f.status); got != want {
				t.Errorf("%s: SELECT %s on B: %s is %s; STATUS on A: %s", step, box, f.sel, got, want)
			}
		}
	}
	same("start", "INBOX")
	for i := 1; i <= 10; i++ {
		msg := simpleMessage(fmt.Sprintf("round %d", i), "hello")
		ra.ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
		same(fmt.Sprintf("round %d, APPEND on A", i), "INBOX")
		ra.ok("SELECT INBOX") // claims the new message as \Recent
		same(fmt.Sprintf("round %d, SELECT on A", i), "INBOX")
		ra.ok(`STORE 1 +FLAGS.SILENT (\Seen)`)
		same(fmt.Sprintf("round %d, STORE on A", i), "INBOX")
		ra.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
		ra.ok("EXPUNGE")
		same(fmt.Sprintf("round %d, EXPUNGE on A", i), "INBOX")
		ra.ok("UNSELECT")
	}
	ra.ok("CREATE Work")
	same("Work created on A", "Work")
	ra.ok("DELETE Work")
	ra.ok("CREATE Work")
	same("Work deleted and made again on A", "Work")
	mustContain(t, rb.ok("SELECT Work"), "* 0 EXISTS")

	// What a SELECT or STATUS of a held mailbox costs: the fewest of a few tries
	// (the node's periodic poll may fall in one).
	rb = b.rawLogin("alice")
	rb.ok("SELECT INBOX")
	// Past the window a catch-up reads again behind its last read (the
	// 50 bulletins A just wrote, two pages: mailbox's followWakeLookback).
	time.Sleep(300 * time.Millisecond)
	for _, cmd := range []string{"SELECT INBOX", "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)"} {
		var trips uint64
		for try := range 5 {
			before := b.pg.Stats().RoundTrips
			rb.ok(cmd)
			if n := b.pg.Stats().RoundTrips - before; try == 0 || n < trips {
				trips = n
			}
		}
		t.Logf("%s of a mailbox B holds: %d round trips", cmd, trips)
		if trips > 1 {
			t.Errorf("%s of a mailbox B holds: %d round trips, want 1 (the catch-up)", cmd, trips)
		}
	}
}
