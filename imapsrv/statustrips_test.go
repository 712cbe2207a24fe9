package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"

	"certmail/mailbox"
)

// TestStatusRoundTrips: STATUS on PostgreSQL. Of a mailbox whose index
// this node holds, Thunderbird's STATUS (no HIGHESTMODSEQ) is one read,
// the mailbox's record, and one with HIGHESTMODSEQ two (the MODSEQ state
// is keyed by the ID the record names); of a mailbox whose index is not
// loaded (the first STATUS of a folder after a restart, or after
// Limits.IndexIdle), the load's reads besides, the mailbox's existence
// in its snapshot a single one. Before: 2 round trips warm and 12 to 13
// cold, in 2 transactions. The answers are those of Badger's.
func TestStatusRoundTrips(t *testing.T) {
	ts := startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, dsn: pg.DB(t), noFollow: true})
	ts.addUser("alice")
	const boxes, n = 4, 300
	for b := range boxes {
		err := ts.store.Update(func(tx *mailbox.Tx) error {
			name := fmt.Sprintf("Box%d", b)
			if _, err := tx.CreateMailbox("alice", mailbox.NewMailbox{Name: name}); err != nil {
				return err
			}
			for i := range n {
				var o mailbox.AppendOptions
				if i%3 == 0 {
					o.Flags = []string{mailbox.FlagSeen}
				}
				if _, err := tx.Append("alice", name, []byte(simpleMessage(fmt.Sprintf("message %d", i), "body\r\n")), o); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rc := ts.rawLogin("alice")
	// cost runs cmd and returns its round trips and transactions.
	cost := func(cmd string) (trips, txs uint64, untagged []string) {
		before := ts.pg.Stats()
		untagged = rc.ok(cmd)
		after := ts.pg.Stats()
		return after.RoundTrips - before.RoundTrips, after.Transactions - before.Transactions, untagged
	}
	const items = "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"
	want := fmt.Sprintf("MESSAGES %d UIDNEXT %d UIDVALIDITY ", n, n+1)

	// Cold: the engine's counter is the whole store's, so upkeep landing
	// in the window counts too; the fewest over the mailboxes counts.
	var coldTrips, coldTxs uint64
	for b := range boxes {
		trips, txs, untagged := cost(fmt.Sprintf("STATUS Box%d %s", b, items))
		l := mustContain(t, untagged, fmt.Sprintf(`* STATUS "Box%d" (`, b), want, fmt.Sprintf("UNSEEN %d)", n-(n+2)/3))
		if strings.Contains(l, "HIGHESTMODSEQ") {
			t.Errorf("STATUS without HIGHESTMODSEQ: %q", l)
		}
		if b == 0 || trips < coldTrips {
			coldTrips, coldTxs = trips, txs
		}
	}
	t.Logf("STATUS %s, index not loaded: %d round trips, %d transactions", items, coldTrips, coldTxs)
	if coldTrips > 8 || coldTxs > 2 {
		t.Errorf("STATUS, index not loaded: %d round trips in %d transactions, want at most 8 in 2 (10 before)", coldTrips, coldTxs)
	}

	for _, c := range []struct {
		cmd  string
		most uint64
	}{
		{"STATUS Box0 " + items, 1},
		{"STATUS Box1 (MESSAGES UIDNEXT UNSEEN RECENT)", 1},
		{"STATUS Box2 (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)", 2},
	} {
		var trips, txs uint64
		var untagged []string
		for try := 0; try < 5; try++ {
			n, x, u := cost(c.cmd)
			if try == 0 || n < trips {
				trips, txs, untagged = n, x, u
			}
			if trips <= c.most {
				break
			}
		}
		t.Logf("%-60s %d round trips, %d transactions", c.cmd, trips, txs)
		if trips > c.most || txs > 1 {
			t.Errorf("%s: %d round trips in %d transactions, want at most %d in 1", c.cmd, trips, txs, c.most)
		}
		mustContain(t, untagged, `* STATUS "Box`, fmt.Sprintf("MESSAGES %d", n), fmt.Sprintf("UIDNEXT %d", n+1))
	}
	// HIGHESTMODSEQ is the mailbox's, as SELECT reports it.
	l := mustContain(t, rc.ok("STATUS Box2 (HIGHESTMODSEQ)"), `* STATUS "Box2" (HIGHESTMODSEQ `)
	hms := codeNumber(t, rc.ok("EXAMINE Box2"), "HIGHESTMODSEQ")
	if !strings.Contains(l, fmt.Sprintf("(HIGHESTMODSEQ %d)", hms)) {
		t.Errorf("STATUS %q, SELECT's HIGHESTMODSEQ %d", l, hms)
	}
}
