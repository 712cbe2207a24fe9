package mailbox

import (
	"context"
	"fmt"
	"runtime/pprof"
	"strings"
	"testing"

	"certmail/kv/pgkv"
)

// roundTrips, called before a benchmark's loop and its result deferred,
// reports the PostgreSQL round trips per operation when the suite runs
// there (CERTMAIL_TEST_ENGINE=postgres).
func roundTrips(b *testing.B, s *Store) func() {
	pe, ok := s.db.(*pgkv.Engine)
	if !ok {
		return func() {}
	}
	before := pe.Stats().RoundTrips
	return func() {
		b.ReportMetric(float64(pe.Stats().RoundTrips-before)/float64(b.N), "roundtrips/op")
	}
}

// benchStore has an INBOX of n messages of about size bytes.
func benchStore(b *testing.B, n, size int) (*Store, uint32) {
	b.Helper()
	return benchFill(b, openTestStore(b), n, size, 100)
}

// benchFill creates an account whose INBOX has n messages of about size
// bytes, appended batch to a transaction.
func benchFill(b *testing.B, s *Store, n, size, batch int) (*Store, uint32) {
	b.Helper()
	if err := s.CreateAccount("bench", "pw", DefaultMailboxes()); err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("the quick brown fox jumps over the lazy dog\r\n", size/45+1)
	for i := 0; i < n; i += batch {
		if err := s.Update(func(tx *Tx) error {
			for j := i; j < min(n, i+batch); j++ {
				raw := fmt.Sprintf("Subject: message %d\r\nMessage-ID: <%d@bench>\r\n\r\n%s", j, j, body)
				if _, err := tx.Append("bench", "INBOX", []byte(raw), AppendOptions{}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	mb, err := s.Mailbox("bench", "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	return s, mb.ID
}

// BenchmarkRaw reads message bytes (FETCH BODY[], SEARCH TEXT) from a
// mailbox of 2,000 messages of 8 KB, in a scattered order.
func BenchmarkRaw(b *testing.B) {
	s, id := benchStore(b, 2000, 8<<10)
	msgs, err := s.Messages("bench", id)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(msgs[0].Size))
	b.ReportAllocs()
	defer roundTrips(b, s)()
	i := 0
	for b.Loop() {
		i = (i + 7919) % len(msgs)
		if _, err := s.Raw(msgs[i].Blob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadIndex is the first SELECT of a mailbox of 10,000 messages
// after a restart: reading every message record into the index.
func BenchmarkLoadIndex(b *testing.B) {
	s, id := benchStore(b, 10000, 1<<10)
	benchLoadIndex(b, s, id, 10000)
}

// BenchmarkLoadIndexPostgres is BenchmarkLoadIndex on PostgreSQL, as a
// node of several sharing one database (issue 13), at 100,000 messages:
// the first SELECT of a large mailbox after the node restarts. Run alone:
//
//	go test -run '^$' -bench LoadIndexPostgres -benchtime 10x ./mailbox
func BenchmarkLoadIndexPostgres(b *testing.B) {
	e, err := pgkv.Open(context.Background(), engines.PostgresDSN(b), pgkv.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(Options{Engine: e, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	const n = 100000
	s, id := benchFill(b, s, n, 200, 400)
	benchLoadIndex(b, s, id, n)
}

func benchLoadIndex(b *testing.B, s *Store, id uint32, n int) {
	b.ReportAllocs()
	defer roundTrips(b, s)()
	// Labelled, so that a CPU profile of the load alone, without the
	// fill, is go tool pprof -tagfocus phase=load.
	pprof.Do(context.Background(), pprof.Labels("phase", "load"), func(context.Context) {
		for b.Loop() {
			s.idx.mu.Lock()
			delete(s.idx.boxes, mboxRef{"bench", id})
			s.idx.mu.Unlock()
			msgs, err := s.Messages("bench", id)
			if err != nil || len(msgs) != n {
				b.Fatal(len(msgs), err)
			}
		}
	})
}
