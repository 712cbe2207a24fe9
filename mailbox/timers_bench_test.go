package mailbox

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkTimerTick measures one scheduler tick (reading what is due)
// with a million timers pending, one per stored message under an
// auto-forward policy, of which a thousand are due: the tick's cost must
// follow what is due, not what is stored.
func BenchmarkTimerTick(b *testing.B) {
	s, err := Open(Options{InMemory: true, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	const pending, due, batch = 1_000_000, 1_000, 5_000
	for start := 0; start < pending; start += batch {
		if err := s.Update(func(tx *Tx) error {
			for i := start; i < start+batch; i++ {
				at := now.Add(time.Hour + time.Duration(i)*time.Millisecond)
				if i < due {
					at = now.Add(-time.Duration(i) * time.Millisecond)
				}
				if err := tx.ScheduleTimer(Timer{Due: at, Kind: "fw-unread", ID: fmt.Sprintf("acct/1/%d", i)}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		got, err := s.DueTimers(now, 10_000)
		if err != nil || len(got) != due {
			b.Fatalf("due timers: %d, %v", len(got), err)
		}
	}
}
