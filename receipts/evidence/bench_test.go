package evidence

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"certmail/receipts"
)

// BenchmarkAppend signs and appends records of many items to one log, as
// the store would: every item gets its COP, then a notification.
func BenchmarkAppend(b *testing.B) {
	l := newTestLog(b)
	kv := receipts.NewMemKV() // the log's own cost, not the store's
	deadline := time.Date(2025, 3, 8, 9, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		item := uint64(i / 2)
		label := fmt.Sprintf("L-%d", item)
		hash := sha256.Sum256([]byte(label))
		ev := NewSubmissionAcceptance(label, hash, receipts.CommitmentUnsalted, "alice", "bob", deadline)
		if i%2 == 1 {
			ev = NewConsignmentNotification(label, hash, "bob")
		}
		if _, err := l.Append(kv, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyBundle verifies the bundle of a released item that went
// through a forward (six records, one COD).
func BenchmarkVerifyBundle(b *testing.B) {
	l, kv, items := buildLog(b)
	bundle := bundleFor(b, l, kv, items[1])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(bundle, VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
