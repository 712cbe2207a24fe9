package imapsrv_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"certmail/imapsrv"
)

// TestSortOrderKept: the per-mailbox sort orders (sortorder.go) kept up
// to date across deliveries and expunges, enough of them to make the
// order drop its expunged messages, answer every SORT as orders built
// afresh do: one key and several, REVERSE with ties (subjects, sizes and
// dates repeat), message numbers and UIDs, with a search program.
func TestSortOrderKept(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rng := rand.New(rand.NewPCG(14, 5267))
	n := 0
	deliver := func(k int) {
		for range k {
			n++
			m := sortMsg{from: fmt.Sprintf("u%d@example.org", rng.IntN(5)), to: fmt.Sprintf("Name %d <t%d@example.org>", rng.IntN(4), rng.IntN(3)),
				subject: []string{"Re: b", "a", "B", "fwd: a", "c [x]", ""}[rng.IntN(6)],
				date:    fmt.Sprintf("%d Jan 2006 10:00:00 +0000", 1+rng.IntN(3)), body: strings.Repeat("x", rng.IntN(3)*10)}
			ts.deliver("alice", "INBOX", m.raw())
		}
	}
	deliver(60)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	cmds := []string{
		"SORT (SUBJECT) UTF-8 ALL", "SORT (REVERSE SUBJECT) UTF-8 ALL", "UID SORT (REVERSE SIZE) UTF-8 ALL",
		"SORT (FROM REVERSE DATE) UTF-8 UNSEEN", "UID SORT (REVERSE DISPLAYTO SIZE SUBJECT) UTF-8 ALL",
		"SORT (ARRIVAL) UTF-8 NOT 3:9", "SORT (REVERSE CC TO) UTF-8 ALL",
	}
	for round := range 6 {
		got := make([][]string, len(cmds))
		for i, c := range cmds {
			got[i] = rc.ok(c)
		}
		imapsrv.DropSortOrders(ts.srv)
		for i, c := range cmds {
			if fresh := rc.ok(c); !slices.Equal(got[i], fresh) {
				t.Fatalf("round %d, %s: kept orders give %q, fresh ones %q", round, c, got[i], fresh)
			}
		}
		// Keep these orders, then change the mailbox under them.
		for _, c := range cmds {
			rc.ok(c)
		}
		deliver(15)
		rc.ok(fmt.Sprintf("STORE %d:%d +FLAGS (\\Deleted \\Seen)", 2+round, 30+round))
		rc.ok("EXPUNGE")
	}
}
