package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"certmail/kv"
	"certmail/kv/keyspace"
	"certmail/kv/pgkv"
	"certmail/mailbox"
)

var quiet = slog.New(slog.DiscardHandler)

// fill puts accounts, messages (one of 2 MiB, one shared by two copies),
// flags and auxiliary records (certified, evidence, outbox) into st, and
// returns each account's INBOX bodies in UID order.
func fill(t *testing.T, st *mailbox.Store) map[string][][]byte {
	t.Helper()
	want := map[string][][]byte{}
	for _, acct := range []string{"alice", "bob"} {
		if err := st.CreateAccount(acct, acct+" pw", mailbox.DefaultMailboxes()); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 1<<20)
	rand.Read(big)
	for i := range 6 {
		raw := fmt.Appendf(nil, "Subject: %d\r\n\r\nmessage %d\r\n", i, i)
		if i == 3 {
			raw = fmt.Appendf(nil, "Subject: big\r\n\r\n%x\r\n", big) // 2 MiB
		}
		acct := []string{"alice", "bob"}[i%2]
		if err := st.Update(func(tx *mailbox.Tx) error {
			r, err := tx.Append(acct, "INBOX", raw, mailbox.AppendOptions{})
			if err != nil || i != 2 {
				return err
			}
			_, err = tx.SetFlags(acct, r.MailboxID, []uint32{r.UID}, mailbox.FlagsAdd, []string{`\Seen`, "$Label1"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		want[acct] = append(want[acct], raw)
	}
	if err := st.Records().Update(func(r kv.Records) error {
		for _, k := range []string{keyspace.Certified + "item/cm-test", keyspace.Evidence + "leaf/1", keyspace.Evidence + "head", keyspace.Outbox + "sent/1"} {
			if err := r.Set([]byte(k), []byte("record "+k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return want
}

// inboxes reads back every account's INBOX bodies and flags.
func inboxes(t *testing.T, st *mailbox.Store) (map[string][][]byte, map[string][]string) {
	t.Helper()
	bodies, flags := map[string][][]byte{}, map[string][]string{}
	accts, err := st.ListAccounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, acct := range accts {
		box, err := st.Mailbox(acct, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := st.Messages(acct, box.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			raw, err := st.Raw(m.Blob)
			if err != nil {
				t.Fatal(err)
			}
			bodies[acct] = append(bodies[acct], raw)
			flags[acct] = append(flags[acct], strings.Join(m.Flags, " "))
		}
	}
	return bodies, flags
}

func sameBodies(t *testing.T, got, want map[string][][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("accounts: got %d, want %d", len(got), len(want))
	}
	for acct, w := range want {
		if !slices.EqualFunc(got[acct], w, bytes.Equal) {
			t.Errorf("%s: %d bodies differ from the %d stored", acct, len(got[acct]), len(w))
		}
	}
}

// TestMigrateBadgerPostgresBadger moves an encrypted Badger store to a
// real PostgreSQL (private cluster) and back into a new data directory:
// each copy compares equal (counts per prefix, every body's SHA-256),
// the final store opens with the same accounts, bodies and flags, and a
// non-empty destination or an empty source is refused.
func TestMigrateBadgerPostgresBadger(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{7}, 32)
	dirA := filepath.Join(t.TempDir(), "a")
	st, err := mailbox.Open(mailbox.Options{Dir: dirA, EncryptionKey: key, Logger: quiet, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := fill(t, st)
	_, wantFlags := inboxes(t, st)
	st.Close()

	dsn := pg.DB(t)
	src, err := OpenStore(ctx, dirA, OpenOptions{Key: key, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := OpenStore(ctx, dsn, OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	var meter bytes.Buffer // stands in for progress.Meter: counts what passes
	pairs, size, err := Copy(ctx, src, dst, CopyOptions{Count: &meter})
	if err != nil {
		t.Fatal(err)
	}
	if int64(meter.Len()) != size || size < 2<<20 || pairs < 20 {
		t.Errorf("copied %d pairs, %d bytes, the meter saw %d", pairs, size, meter.Len())
	}
	rep, err := Compare(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Source.Keys != pairs || rep.Bodies != 6 || rep.BodyBytes < 2<<20 {
		t.Fatalf("Badger -> PostgreSQL: %+v", rep)
	}
	for _, p := range []string{keyspace.Account, keyspace.Message, keyspace.Raw, keyspace.Aux + keyspace.Evidence, keyspace.Aux + keyspace.Certified} {
		if s, d := rep.Source.Count(p), rep.Dest.Count(p); s.Keys == 0 || s != d {
			t.Errorf("%s: source %+v, destination %+v", p, s, d)
		}
	}
	if got := rep.Source.Count(keyspace.Aux + keyspace.Evidence).Keys; got != 2 {
		t.Errorf("evidence records: %d", got)
	}

	// Again into the same database: refused, nothing written.
	if _, _, err := Copy(ctx, src, dst, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("copy into a non-empty destination: %v", err)
	}
	// A data directory with anything in it is no destination.
	if _, err := OpenStore(ctx, dirA, OpenOptions{Key: key, Create: true}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a non-empty directory as destination: %v", err)
	}
	// An empty source: refused (a mistyped source).
	if _, err := OpenStore(ctx, filepath.Join(t.TempDir(), "nothing"), OpenOptions{}); err == nil {
		t.Fatal("a directory without a store opened as a source")
	}
	empty, err := OpenStore(ctx, pg.DB(t), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := OpenStore(ctx, pg.DB(t), OpenOptions{})
	if _, _, err := Copy(ctx, empty, other, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("copy of an empty source: %v", err)
	}
	empty.Close()
	other.Close()
	src.Close()
	dst.Close()

	// And back, from a fresh connection, into a new data directory.
	dirC := filepath.Join(t.TempDir(), "c")
	back, err := OpenStore(ctx, dsn, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	c, err := OpenStore(ctx, dirC, OpenOptions{Key: key, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := Copy(ctx, back, c, CopyOptions{}); err != nil || n != pairs {
		t.Fatalf("PostgreSQL -> Badger: %d pairs of %d, %v", n, pairs, err)
	}
	if rep, err := Compare(back, c); err != nil || !rep.OK() {
		t.Fatalf("PostgreSQL -> Badger: %+v %v", rep, err)
	}
	c.Close()
	st, err = mailbox.Open(mailbox.Options{Dir: dirC, EncryptionKey: key, Logger: quiet, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, gotFlags := inboxes(t, st)
	sameBodies(t, got, want)
	for acct := range wantFlags {
		if !slices.Equal(gotFlags[acct], wantFlags[acct]) {
			t.Errorf("%s flags: %q, want %q", acct, gotFlags[acct], wantFlags[acct])
		}
	}
	if _, err := st.Authenticate("bob", "bob pw"); err != nil {
		t.Errorf("bob's password after the round trip: %v", err)
	}
}

// TestMigrateDetectsCorruptDestination: after a copy to PostgreSQL, one
// body changed by a byte, a message record deleted and a stray key added
// in the destination are each found, named and counted.
func TestMigrateDetectsCorruptDestination(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a")
	st, err := mailbox.Open(mailbox.Options{Dir: dir, Logger: quiet, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, st)
	st.Close()
	src, err := OpenStore(ctx, dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dsn := pg.DB(t)
	dst, err := pgkv.Open(ctx, dsn, pgkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, _, err := Copy(ctx, src, dst, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	var body, msg []byte
	if err := kv.Update(dst, func(tx kv.Txn) error {
		if err := tx.Scan(kv.Range{Prefix: []byte(keyspace.Raw), Limit: 1}, func(k, v []byte) error {
			body = bytes.Clone(k)
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Scan(kv.Range{Prefix: []byte(keyspace.Message), Limit: 1, KeysOnly: true}, func(k, v []byte) error {
			msg = bytes.Clone(k)
			return nil
		}); err != nil {
			return err
		}
		v, err := tx.Get(body, nil)
		if err != nil {
			return err
		}
		v[len(v)/2] ^= 1
		if err := tx.Set(body, v); err != nil {
			return err
		}
		if err := tx.Delete(msg); err != nil {
			return err
		}
		return tx.Set([]byte(keyspace.Aux+keyspace.Outbox+"stray"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := Compare(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.BodyMismatches != 1 || rep.OtherMismatches != 2 || len(rep.Mismatches) != 3 {
		t.Fatalf("report: %+v", rep)
	}
	whats := map[string]string{}
	for _, m := range rep.Mismatches {
		whats[m.Prefix] = m.What
	}
	if whats[keyspace.Raw] != "differs" || whats[keyspace.Message] != "missing" || whats[keyspace.Aux+keyspace.Outbox] != "extra" {
		t.Errorf("mismatches: %+v", rep.Mismatches)
	}
	if s, d := rep.Source.Count(keyspace.Message).Keys, rep.Dest.Count(keyspace.Message).Keys; s != d+1 {
		t.Errorf("msg/ counts: source %d, destination %d", s, d)
	}
}

// TestBackupOfPostgresStore: a backup is engine-neutral: a store running
// on PostgreSQL is backed up and restored into a data directory.
func TestBackupOfPostgresStore(t *testing.T) {
	e, err := pgkv.Open(context.Background(), pg.DB(t), pgkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailbox.Open(mailbox.Options{Engine: e, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	want := fill(t, st)
	dataDir := t.TempDir()
	os.WriteFile(filepath.Join(dataDir, "gateway.key"), []byte("KEY"), 0o600)
	var buf bytes.Buffer
	res, err := Write(st, dataDir, nil, &buf)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "pg.bak")
	os.WriteFile(archive, buf.Bytes(), 0o600)
	so := mailbox.Options{Dir: filepath.Join(t.TempDir(), "r"), Logger: quiet, GCInterval: -1}
	rr, err := Restore(context.Background(), so, archive, RestoreOptions{Count: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	man, tr := rr.Manifest, rr.Trailer
	if man.Format != format || tr.Pairs != res.Pairs || res.Pairs == 0 || !slices.Equal(man.Files, []string{"gateway.key"}) {
		t.Fatalf("manifest %+v, trailer %+v, result %+v", man, tr, res)
	}
	rst, err := mailbox.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	got, _ := inboxes(t, rst)
	sameBodies(t, got, want)
}
