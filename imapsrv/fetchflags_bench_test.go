package imapsrv_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"certmail/mailbox"
)

// fetchFlagsLargeN is the size of certbench's large mailbox.
const fetchFlagsLargeN = 100_000

// fillFetchFlagsLarge fills alice's INBOX on ts as certbench's large
// mailbox: fetchFlagsLargeN messages, the older half \Seen.
func fillFetchFlagsLarge(ts *testServer) {
	const n = fetchFlagsLargeN
	ts.addUser("alice")
	ts.fillShared("alice", n, func(i int) []string {
		if i < n/2 {
			return []string{mailbox.FlagSeen}
		}
		return nil
	})
}

// benchFetchFlagsLarge is `UID FETCH 1:* (FLAGS)` of the large mailbox
// (fillFetchFlagsLarge), asked and read by go-imap's client as
// certbench's large-mailbox workload does it, on ts; on PostgreSQL it
// reports the store's round trips and transactions per FETCH. Most of
// the time is the client's (parsing 100,000 responses):
// benchFetchFlagsLargeServer is the server's share.
func benchFetchFlagsLarge(b *testing.B, ts *testServer) {
	const n = fetchFlagsLargeN
	fillFetchFlagsLarge(ts)
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

// benchFetchFlagsLargeServer is benchFetchFlagsLarge with a client that
// parses nothing: it reads the responses in large pieces until the tagged
// OK, so the time is the server's (and the socket's).
func benchFetchFlagsLargeServer(b *testing.B, ts *testServer) {
	fillFetchFlagsLarge(ts)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	buf := make([]byte, 256<<10)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tag := fmt.Sprintf("f%d", i)
		rc.write(tag + " UID FETCH 1:* (FLAGS)\r\n")
		end := []byte("\r\n" + tag + " OK")
		var tail []byte
		lines := 0
		for !bytes.Contains(tail, end) {
			rc.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			k, err := rc.br.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			lines += bytes.Count(buf[:k], []byte("\n"))
			tail = append(tail[:0], buf[max(0, k-64):k]...)
		}
		if lines != fetchFlagsLargeN+1 {
			b.Fatalf("%d lines, want %d", lines, fetchFlagsLargeN+1)
		}
	}
}

func BenchmarkFetchFlagsLargeServer(b *testing.B) { benchFetchFlagsLargeServer(b, newTestServer(b)) }

func BenchmarkFetchFlagsLargeServerPostgres(b *testing.B) {
	benchFetchFlagsLargeServer(b, startTestServer(&testServer{t: b, dir: b.TempDir(), logs: &syncBuffer{}, dsn: pg.DB(b)}))
}
