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
	var blob uint64
	if err := ts.store.Update(func(tx *mailbox.Tx) error {
		var err error
		blob, err = tx.PutBlob([]byte(simpleMessage("shared", "body")))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 500 {
		if err := ts.store.Update(func(tx *mailbox.Tx) error {
			for j := i; j < i+500; j++ {
				var flags []string
				if j < n/2 {
					flags = []string{mailbox.FlagSeen}
				}
				if _, err := tx.AppendBlob("alice", "INBOX", blob, mailbox.AppendOptions{Flags: flags}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	b.ResetTimer()
	for b.Loop() {
		rc.ok("SELECT INBOX")
	}
}
