package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"

	"certmail/mailbox"
)

const benchMessages = 10000

// benchMailbox returns a raw client with an INBOX of benchMessages
// messages selected, every other one \Seen.
func benchMailbox(b *testing.B) *rawClient {
	b.Helper()
	return benchMailboxOn(b, newTestServer(b))
}

// benchMailboxOn is benchMailbox on the server ts.
func benchMailboxOn(b *testing.B, ts *testServer) *rawClient {
	b.Helper()
	ts.addUser("alice")
	const batch = 500
	for i := 0; i < benchMessages; i += batch {
		err := ts.store.Update(func(tx *mailbox.Tx) error {
			for j := i; j < i+batch && j < benchMessages; j++ {
				var flags []string
				if j%2 == 0 {
					flags = []string{mailbox.FlagSeen}
				}
				raw := simpleMessage(fmt.Sprintf("benchmark message %d", j), strings.Repeat("some text of the body\r\n", 40))
				if _, err := tx.Append("alice", "INBOX", []byte(raw), mailbox.AppendOptions{Flags: flags}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	return rc
}

// run sends a command and reads its responses, counting untagged ones.
func benchRun(b *testing.B, rc *rawClient, cmd string, want int) {
	untagged := rc.ok(cmd)
	if want >= 0 && len(untagged) != want {
		b.Fatalf("%s: %d responses, want %d", cmd, len(untagged), want)
	}
}

// BenchmarkFetchFlags: what a client does on every resync.
func BenchmarkFetchFlags(b *testing.B) {
	rc := benchMailbox(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchRun(b, rc, `UID FETCH 1:* (FLAGS)`, benchMessages)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchMessages), "ns/message")
}

// BenchmarkFetchHeaders: the message list of a new mailbox, 1,000
// messages at a time, as Thunderbird asks for it.
func BenchmarkFetchHeaders(b *testing.B) {
	rc := benchMailbox(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lo := 1 + (i*1000)%benchMessages
		benchRun(b, rc, fmt.Sprintf(`UID FETCH %d:%d (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Subject Date)])`, lo, lo+999), 1000)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/message")
}

// BenchmarkSearchUnseen: the unread count a client computes.
func BenchmarkSearchUnseen(b *testing.B) {
	rc := benchMailbox(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		untagged := rc.ok(`UID SEARCH UNSEEN`)
		if len(untagged) != 1 || strings.Count(untagged[0], " ") != benchMessages/2+1 {
			b.Fatalf("UID SEARCH UNSEEN: %.100q", untagged)
		}
	}
}

// BenchmarkSearchText: a word in no message, over every message's bytes.
func BenchmarkSearchText(b *testing.B) {
	rc := benchMailbox(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchRun(b, rc, `UID SEARCH TEXT "quokka"`, 1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchMessages), "ns/message")
}

// BenchmarkSearchTextPostgres is BenchmarkSearchText on a store on
// PostgreSQL (the binary's private cluster, loopback), where the bodies
// are read from the database; it reports the round trips a SEARCH takes.
func BenchmarkSearchTextPostgres(b *testing.B) {
	ts := startTestServer(&testServer{t: b, dir: b.TempDir(), logs: &syncBuffer{}, dsn: pg.DB(b)})
	rc := benchMailboxOn(b, ts)
	before := ts.pg.Stats()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchRun(b, rc, `UID SEARCH TEXT "quokka"`, 1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchMessages), "ns/message")
	b.ReportMetric(float64(ts.pg.Stats().RoundTrips-before.RoundTrips)/float64(b.N), "roundtrips/op")
}

// BenchmarkSearchTextNonASCII: a word that is not ASCII is looked for in
// the decoded, case-folded text of every message.
func BenchmarkSearchTextNonASCII(b *testing.B) {
	rc := benchMailbox(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchRun(b, rc, `UID SEARCH TEXT "café"`, 1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchMessages), "ns/message")
}

// BenchmarkSearchManyTerms: 50 words that are not ASCII over one large
// message that has them all (issue 11 item 7: each used to case-fold the
// whole body again).
func BenchmarkSearchManyTerms(b *testing.B) {
	ts := newTestServer(b)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("résumé", strings.Repeat("Ünïcödé text of the body, naïve and long enough\r\n", 20000)+"un CAFÉ\r\n"))
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	cmd := `UID SEARCH` + strings.Repeat(` TEXT "café"`, 50)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchRun(b, rc, cmd, 1)
	}
}
