package mailbox

import (
	"fmt"
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
	s := openTestStore(b)
	if err := s.CreateAccount("bench", "pw", DefaultMailboxes()); err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("the quick brown fox jumps over the lazy dog\r\n", size/45+1)
	for i := 0; i < n; i += 100 {
		if err := s.Update(func(tx *Tx) error {
			for j := i; j < min(n, i+100); j++ {
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
	b.ReportAllocs()
	defer roundTrips(b, s)()
	for b.Loop() {
		s.idx.mu.Lock()
		delete(s.idx.boxes, mboxRef{"bench", id})
		s.idx.mu.Unlock()
		msgs, err := s.Messages("bench", id)
		if err != nil || len(msgs) != 10000 {
			b.Fatal(len(msgs), err)
		}
	}
}
