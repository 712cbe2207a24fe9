package imapsrv_test

import (
	"testing"

	"certmail/mailbox"
)

// BenchmarkSelectLarge is SELECT of a mailbox of 100,000 messages, the
// older half \Seen, as certbench's large-mailbox workload does it (the
// messages share one stored body: only the index matters here).
func BenchmarkSelectLarge(b *testing.B) { benchSelectLarge(b, newTestServer(b)) }

// BenchmarkSelectLargePostgres is the same on PostgreSQL, with the
// round trips and transactions a SELECT costs: certbench's target is a
// SELECT no slower than Dovecot's, whose warm SELECT reads a current
// index file (0.2-0.4 ms), so every round trip counts.
func BenchmarkSelectLargePostgres(b *testing.B) {
	benchSelectLarge(b, startTestServer(&testServer{t: b, dir: b.TempDir(), logs: &syncBuffer{}, dsn: pg.DB(b)}))
}

func benchSelectLarge(b *testing.B, ts *testServer) {
	const n = 100_000
	ts.addUser("alice")
	ts.fillShared("alice", n, func(i int) []string {
		if i < n/2 {
			return []string{mailbox.FlagSeen}
		}
		return nil
	})
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	var trips, txs uint64
	if ts.pg != nil {
		s := ts.pg.Stats()
		trips, txs = s.RoundTrips, s.Transactions
	}
	b.ResetTimer()
	for b.Loop() {
		rc.ok("SELECT INBOX")
	}
	b.StopTimer()
	if ts.pg != nil {
		s := ts.pg.Stats()
		b.ReportMetric(float64(s.RoundTrips-trips)/float64(b.N), "roundtrips/op")
		b.ReportMetric(float64(s.Transactions-txs)/float64(b.N), "txs/op")
	}
}
