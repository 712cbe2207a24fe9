package imapsrv_test

import (
	"testing"

	"github.com/emersion/go-imap/v2"

	"certmail/mailbox"
)

// benchFetchFlagsLarge is `UID FETCH 1:* (FLAGS)` of a mailbox of
// 100,000 messages, the older half \Seen, asked and read by go-imap's
// client as certbench's large-mailbox workload does it, on ts; on
// PostgreSQL it reports the store's round trips and transactions per
// FETCH.
func benchFetchFlagsLarge(b *testing.B, ts *testServer) {
	const n = 100_000
	ts.addUser("alice")
	ts.fillShared("alice", n, func(i int) []string {
		if i < n/2 {
			return []string{mailbox.FlagSeen}
		}
		return nil
	})
	c := ts.client("alice")
	c.selectBox("INBOX")
	var trips, txs uint64
	if ts.pg != nil {
		s := ts.pg.Stats()
		trips, txs = s.RoundTrips, s.Transactions
	}
	b.ResetTimer()
	for b.Loop() {
		cmd := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true})
		got := 0
		for m := cmd.Next(); m != nil; m = cmd.Next() {
			if _, err := m.Collect(); err != nil {
				b.Fatal(err)
			}
			got++
		}
		if err := cmd.Close(); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("UID FETCH 1:* (FLAGS): %d messages, want %d", got, n)
		}
	}
	b.StopTimer()
	if ts.pg != nil {
		s := ts.pg.Stats()
		b.ReportMetric(float64(s.RoundTrips-trips)/float64(b.N), "roundtrips/op")
		b.ReportMetric(float64(s.Transactions-txs)/float64(b.N), "txs/op")
	}
}

func BenchmarkFetchFlagsLarge(b *testing.B) { benchFetchFlagsLarge(b, newTestServer(b)) }

func BenchmarkFetchFlagsLargePostgres(b *testing.B) {
	benchFetchFlagsLarge(b, startTestServer(&testServer{t: b, dir: b.TempDir(), logs: &syncBuffer{}, dsn: pg.DB(b)}))
}
