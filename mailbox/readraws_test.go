package mailbox

import (
	"bytes"
	"fmt"
	"testing"

	"certmail/kv/pgkv"
)

// TestReadRaws: several messages' bytes read together, each passed once
// by its index, a blob the store does not hold not passed; on PostgreSQL
// in one round trip, not one per message (SEARCH over bodies reads them
// so).
func TestReadRaws(t *testing.T) {
	// No following: its polls run on the same engine and would count
	// in the round trips measured below (a poll landing in the window
	// failed this test in CI).
	s := openAt(t, Options{Dir: t.TempDir(), GCInterval: -1, FollowInterval: -1})
	t.Cleanup(func() { s.Close() })
	newAccount(t, s, "a")
	const n = 300
	want := make(map[uint64][]byte)
	var blobs []uint64
	for i := range n {
		raw := fmt.Appendf(nil, "Subject: %d\r\n\r\n%s\r\n", i, bytes.Repeat([]byte{'a' + byte(i%26)}, i*10))
		err := s.Update(func(tx *Tx) error {
			res, err := tx.Append("a", "INBOX", raw, AppendOptions{})
			if err == nil {
				blobs = append(blobs[:i], res.Blob)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want[blobs[i]] = raw
	}
	missing := blobs[n-1] + 1000
	ask := append([]uint64{missing}, blobs...)
	pg, _ := s.db.(*pgkv.Engine)
	var before pgkv.Stats
	if pg != nil {
		before = pg.Stats()
	}
	got := make(map[int][]byte)
	err := s.ReadRaws(ask, func(i int, raw []byte) error {
		if _, dup := got[i]; dup {
			return fmt.Errorf("index %d twice", i)
		}
		got[i] = bytes.Clone(raw)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pg != nil {
		if trips := pg.Stats().RoundTrips - before.RoundTrips; trips > 1 {
			t.Errorf("ReadRaws of %d messages took %d round trips; want 1", n, trips)
		}
	}
	if _, ok := got[0]; ok {
		t.Error("a blob the store does not hold was passed")
	}
	for i, b := range ask[1:] {
		if !bytes.Equal(got[i+1], want[b]) {
			t.Fatalf("message %d: %q, want %q", i, got[i+1], want[b])
		}
	}
}
