package imapsrv_test

import (
	"fmt"
	"testing"

	"certmail/mailbox"
)

// BenchmarkSortLarge is SORT and THREAD over 100,000 messages, as
// certbench's large-mailbox workload runs them: 1,000 distinct stored
// messages (subjects, senders, dates, reply chains) appended 100 times
// each, so the keys vary while the fill stays cheap.
func BenchmarkSortLarge(b *testing.B) {
	const n, distinct = 100_000, 1000
	ts := newTestServer(b)
	ts.addUser("alice")
	blobs := make([]uint64, distinct)
	for i := range blobs {
		if err := ts.store.Update(func(tx *mailbox.Tx) error {
			m := sortMsg{from: fmt.Sprintf("User %d <u%d@example.org>", i%97, i%89), to: "bob@example.org",
				subject: fmt.Sprintf("Re: topic %d", i%300), date: fmt.Sprintf("%d Jan 2006 10:%02d:00 +0000", 1+i%28, i%60),
				id: fmt.Sprintf("<%d@x>", i), refs: fmt.Sprintf("<%d@x>", i/3), body: "body"}
			var err error
			blobs[i], err = tx.PutBlob([]byte(m.raw()))
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < n; i += 500 {
		if err := ts.store.Update(func(tx *mailbox.Tx) error {
			for j := i; j < i+500 && j < n; j++ {
				if _, err := tx.AppendBlob("alice", "INBOX", blobs[j%distinct], mailbox.AppendOptions{}); err != nil {
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
	for _, cmd := range []string{"SORT (REVERSE ARRIVAL) UTF-8 ALL", "SORT (SUBJECT) UTF-8 ALL", "SORT (REVERSE SUBJECT) UTF-8 ALL",
		"SORT (FROM REVERSE DATE) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL"} {
		// Once untimed first, as certbench does: the first SORT of a
		// mailbox reads its sort keys and builds its order.
		rc.ok(cmd)
		b.Run(cmd, func(b *testing.B) {
			for b.Loop() {
				rc.ok(cmd)
			}
		})
	}
}
