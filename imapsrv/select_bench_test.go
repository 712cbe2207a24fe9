package imapsrv_test

import (
	"testing"

	"certmail/mailbox"
)

// BenchmarkSelectLarge is SELECT of a mailbox of 100,000 messages, the
// older half \Seen, as certbench's large-mailbox workload does it (the
// messages share one stored body: only the index matters here).
func BenchmarkSelectLarge(b *testing.B) {
	const n = 100_000
	ts := newTestServer(b)
	ts.addUser("alice")
	ts.fillShared("alice", n, func(i int) []string {
		if i < n/2 {
			return []string{mailbox.FlagSeen}
		}
		return nil
	})
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	b.ResetTimer()
	for b.Loop() {
		rc.ok("SELECT INBOX")
	}
}
