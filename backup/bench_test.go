package backup

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"

	"certmail/mailbox"
)

// BenchmarkMigrate copies a data directory of 2,000 messages of 50 KB
// (98 MiB of stream) to a fresh schema on the private PostgreSQL and
// compares the two (b.SetBytes: MB/s of the stream, copy and check
// together); then back into a new data directory. Needs a quiet machine:
// go test -run '^$' -bench Migrate -benchtime 3x ./backup
func BenchmarkMigrate(b *testing.B) {
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "a")
	st, err := mailbox.Open(mailbox.Options{Dir: dir, Logger: quiet, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.CreateAccount("alice", "pw", mailbox.DefaultMailboxes()); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 25<<10)
	for i := 0; i < 2000; i += 100 {
		if err := st.Update(func(tx *mailbox.Tx) error {
			for j := range 100 {
				rand.Read(body)
				if _, err := tx.Append("alice", "INBOX", fmt.Appendf(nil, "Subject: %d\r\n\r\n%x\r\n", i+j, body), mailbox.AppendOptions{}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	src, err := OpenStore(ctx, dir, OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	run := func(b *testing.B, from func() string, to func() string) {
		for b.Loop() {
			b.StopTimer()
			s, err := OpenStore(ctx, from(), OpenOptions{})
			if err != nil {
				b.Fatal(err)
			}
			d, err := OpenStore(ctx, to(), OpenOptions{Create: true, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			_, size, err := Copy(context.Background(), s, d, CopyOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if rep, err := Compare(s, d); err != nil || !rep.OK() {
				b.Fatalf("%+v %v", rep, err)
			}
			b.SetBytes(size)
			b.StopTimer()
			s.Close()
			d.Close()
			b.StartTimer()
		}
	}
	src.Close()
	// Schemas and directories belong to the parent, so that the second
	// direction reads what the first wrote.
	var dsn string
	b.Run("BadgerToPostgres", func(sub *testing.B) {
		run(sub, func() string { return dir }, func() string { dsn = pg.DB(b); return dsn })
	})
	if dsn == "" {
		return
	}
	b.Run("PostgresToBadger", func(sub *testing.B) {
		run(sub, func() string { return dsn }, func() string { return filepath.Join(b.TempDir(), "c") })
	})
}
