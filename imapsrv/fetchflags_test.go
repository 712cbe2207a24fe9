package imapsrv_test

import (
	"fmt"
	"regexp"
	"testing"
)

// fetchFlagsLine is one FETCH response of `UID FETCH ... (FLAGS)`.
var fetchFlagsLine = regexp.MustCompile(`^\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)$`)

// TestFetchFlagsAcrossNodes: two nodes on one PostgreSQL database. A
// FETCH of flags on node B is answered from what B holds in memory (the
// mailbox's records as its index has them, followed from the change
// journal), never from the records in the database: one transaction
// (the catch-up, catchup.go) and two round trips whatever the mailbox's
// size. And it is as correct as reading the records: after a STORE on
// node A returned, B's FETCH shows its flags, every message of a STORE
// over the whole mailbox and each of a run of single-message STOREs.
func TestFetchFlagsAcrossNodes(t *testing.T) {
	const n = 2000
	a, b := twoNodes(t)
	a.fillShared("alice", n, nil)
	ra, rb := a.rawLogin("alice"), b.rawLogin("alice")
	ra.ok("SELECT INBOX")
	mustContain(t, rb.ok("SELECT INBOX"), fmt.Sprintf("* %d EXISTS", n))

	// flags returns B's answer to `UID FETCH set (FLAGS)`, by UID.
	flags := func(set string) map[string]string {
		t.Helper()
		got := make(map[string]string)
		for _, l := range rb.ok("UID FETCH " + set + " (FLAGS)") {
			if m := fetchFlagsLine.FindStringSubmatch(l); m != nil {
				got[m[1]] = m[2] // a later one is newer (RFC 3501 7.4.2)
			}
		}
		return got
	}

	// The cost: the engine's counter is the whole store's, so a poll of
	// B's follower landing in the window counts too; the fewest of a
	// few tries is the FETCH's own.
	var trips, txs uint64
	for try := 0; try < 5; try++ {
		before := b.pg.Stats()
		if got := flags("1:*"); len(got) != n {
			t.Fatalf("UID FETCH 1:* (FLAGS) on B: %d messages, want %d", len(got), n)
		}
		after := b.pg.Stats()
		if try == 0 || after.RoundTrips-before.RoundTrips < trips {
			trips, txs = after.RoundTrips-before.RoundTrips, after.Transactions-before.Transactions
		}
		if trips <= 2 && txs <= 1 {
			break
		}
	}
	t.Logf("UID FETCH 1:* (FLAGS) of %d messages on B: %d round trips, %d transactions", n, trips, txs)
	if trips > 2 || txs > 1 {
		t.Errorf("UID FETCH 1:* (FLAGS) of %d messages: %d round trips in %d transactions, want at most 2 in 1 (the catch-up)", n, trips, txs)
	}

	// A STORE over the whole mailbox on A (two transactions of
	// flagBatch messages each), then B's FETCH.
	ra.ok(`UID STORE 1:* +FLAGS.SILENT (\Flagged)`)
	got := flags("1:*")
	if len(got) != n {
		t.Fatalf("UID FETCH 1:* (FLAGS) on B: %d messages, want %d", len(got), n)
	}
	for uid, f := range got {
		if f != `\Flagged` {
			t.Fatalf("UID %s on B after A flagged every message: FLAGS (%s), want (\\Flagged)", uid, f)
		}
	}

	// Single STOREs on A, each followed at once by B's FETCH.
	for i := range 40 {
		uid := fmt.Sprint(1 + i*(n/40))
		want := ""
		if i%2 == 1 {
			want = `\Seen`
		}
		ra.ok(`UID STORE ` + uid + ` FLAGS.SILENT (` + want + `)`)
		if f, ok := flags(uid)[uid]; !ok || f != want {
			t.Errorf("round %d: UID %s on B right after a STORE on A: FLAGS (%s) (present %v), want (%s)", i, uid, f, ok, want)
		}
	}
	if t.Failed() {
		return
	}
	// And the whole mailbox once more, against what A says.
	want := make(map[string]string)
	for _, l := range ra.ok("UID FETCH 1:* (FLAGS)") {
		if m := fetchFlagsLine.FindStringSubmatch(l); m != nil {
			want[m[1]] = m[2]
		}
	}
	got = flags("1:*")
	for uid, f := range want {
		if got[uid] != f {
			t.Errorf("UID %s: FLAGS (%s) on B, (%s) on A", uid, got[uid], f)
		}
	}
	if len(got) != n || len(want) != n {
		t.Errorf("B lists %d messages, A %d, want %d", len(got), len(want), n)
	}
}
