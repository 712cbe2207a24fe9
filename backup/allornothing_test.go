package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"certmail/kv"
	"certmail/kv/badgerkv"
	"certmail/kv/keyspace"
	"certmail/kv/pgkv"
	"certmail/kv/pgkv/pgtest"
	"certmail/mailbox"
)

// source is a store written to a backup file, and what it held.
type source struct {
	dir     string // its data directory (Badger)
	archive string // its backup
	size    int64
	bodies  map[string][][]byte
	flags   map[string][]string
	boxes   map[string]uint32 // "acct/mailbox" -> UIDVALIDITY
	aux     map[string]string // certified, evidence and outbox records
	pairs   int64
}

// newSource fills a Badger store (fill, and 8 MiB more of mail so that a
// load commits several batches before a late cut is found) and backs it
// up into a file.
func newSource(t *testing.T) *source {
	t.Helper()
	src := &source{dir: filepath.Join(t.TempDir(), "src")}
	st, err := mailbox.Open(mailbox.Options{Dir: src.dir, Logger: quiet, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fill(t, st)
	body := make([]byte, 1<<20)
	for i := range 8 {
		rand.Read(body)
		raw := fmt.Appendf(nil, "Subject: filler %d\r\n\r\n%x\r\n", i, body[:512<<10])
		if err := st.Update(func(tx *mailbox.Tx) error {
			_, err := tx.Append("alice", "Archive", raw, mailbox.AppendOptions{Flags: []string{`\Seen`}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(src.dir, "gateway.key"), []byte("KEY"), 0o600)
	src.bodies, src.flags = inboxes(t, st)
	src.boxes = uidValidities(t, st)
	src.aux = auxRecords(t, st.Engine())
	var buf bytes.Buffer
	res, err := Write(st, src.dir, nil, &buf)
	if err != nil {
		t.Fatal(err)
	}
	src.pairs = res.Pairs
	src.archive = filepath.Join(t.TempDir(), "src.bak")
	src.size = int64(buf.Len())
	if err := os.WriteFile(src.archive, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return src
}

// uidValidities maps every mailbox, "acct/name", to its UIDVALIDITY.
func uidValidities(t *testing.T, st *mailbox.Store) map[string]uint32 {
	t.Helper()
	out := map[string]uint32{}
	accts, err := st.ListAccounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, acct := range accts {
		boxes, err := st.ListMailboxes(acct)
		if err != nil {
			t.Fatal(err)
		}
		for _, mb := range boxes {
			out[acct+"/"+mb.Name] = mb.UIDValidity
		}
	}
	return out
}

// auxRecords are the records of the packages above the store that fill
// writes (certified items, the evidence log, the outbox).
func auxRecords(t *testing.T, e kv.Engine) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := kv.View(e, func(tx kv.Txn) error {
		return tx.Scan(kv.Range{Prefix: []byte(keyspace.Aux)}, func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkRestored opens the restored store and checks that it holds the
// source's mail, flags and records, and that every mailbox has a new
// UIDVALIDITY, above the source's (newUID) or the same one (migrate).
func (src *source) checkRestored(t *testing.T, so mailbox.Options, newUID bool) {
	t.Helper()
	st, err := mailbox.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bodies, flags := inboxes(t, st)
	sameBodies(t, bodies, src.bodies)
	for acct := range src.flags {
		if !slices.Equal(flags[acct], src.flags[acct]) {
			t.Errorf("%s flags: %q, want %q", acct, flags[acct], src.flags[acct])
		}
	}
	if _, err := st.Authenticate("bob", "bob pw"); err != nil {
		t.Errorf("bob's password: %v", err)
	}
	got := auxRecords(t, st.Engine())
	if len(got) != len(src.aux) {
		t.Errorf("records above the store: %d, want %d", len(got), len(src.aux))
	}
	for k, v := range src.aux {
		if got[k] != v {
			t.Errorf("%q: %q, want %q", k, got[k], v)
		}
	}
	uv := uidValidities(t, st)
	if len(uv) != len(src.boxes) || len(uv) < 10 {
		t.Fatalf("mailboxes: %v, want %v", uv, src.boxes)
	}
	for name, old := range src.boxes {
		switch {
		case newUID && uv[name] <= old:
			t.Errorf("%s: UIDVALIDITY %d after the restore, %d before: clients would trust UIDs that come back", name, uv[name], old)
		case !newUID && uv[name] != old:
			t.Errorf("%s: UIDVALIDITY %d after the migration, %d before", name, uv[name], old)
		}
	}
	// UIDs and UIDNEXT are kept: only UIDVALIDITY says that they start
	// over.
	box, err := st.Mailbox("alice", "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if box.UIDNext != 9 {
		t.Errorf("Archive UIDNEXT %d, want 9", box.UIDNext)
	}
	// A mailbox created now gets a UIDVALIDITY above every restored one.
	if err := st.Update(func(tx *mailbox.Tx) error {
		mb, err := tx.CreateMailbox("alice", mailbox.NewMailbox{Name: "After"})
		if err != nil {
			return err
		}
		for name, v := range uv {
			if mb.UIDValidity <= v {
				t.Errorf("a new mailbox's UIDVALIDITY %d, not above %s's %d", mb.UIDValidity, name, v)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// onceClose closes its engine once: mailbox.Load closes the engine it is
// given, and a restore that fails before loading does not.
type onceClose struct {
	kv.Engine
	once sync.Once
}

func (o *onceClose) Close() error {
	o.once.Do(func() { o.Engine.Close() })
	return nil
}

func openPG(t *testing.T, dsn string) kv.Engine {
	t.Helper()
	e, err := pgkv.Open(context.Background(), dsn, pgkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// pgTarget is the options of a restore into the database of dsn, the
// data directory's files going into dir.
func pgTarget(t *testing.T, dsn, dir string) (mailbox.Options, *onceClose) {
	e := &onceClose{Engine: openPG(t, dsn)}
	t.Cleanup(func() { e.Close() })
	return mailbox.Options{Dir: dir, Engine: e, Logger: quiet, GCInterval: -1}, e
}

// pgEmpty fails t unless the database of dsn holds no pair at all.
func pgEmpty(t *testing.T, dsn, what string) {
	t.Helper()
	e := openPG(t, dsn)
	defer e.Close()
	var n int
	err := kv.View(e, func(tx kv.Txn) error {
		n = 0
		return tx.Scan(kv.Range{KeysOnly: true}, func(k, _ []byte) error {
			n++
			return nil
		})
	})
	if err != nil || n != 0 {
		t.Fatalf("%s: the database holds %d pairs (%v)", what, n, err)
	}
}

func dirEmpty(t *testing.T, dir, what string) {
	t.Helper()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("%s: %s holds %d files", what, dir, len(ents))
	}
}

// damaged are the ways TestRestoreAllOrNothing spoils the backup: cut at
// several points (in the manifest, in each third of the store, just
// before the trailer, the last byte) and one byte changed in the store's
// stream (found only by its digest, once every pair has been loaded) or
// in a tar header.
func damaged(t *testing.T, src *source) map[string]string {
	data, err := os.ReadFile(src.archive)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	put := func(name string, b []byte) {
		p := filepath.Join(t.TempDir(), name+".bak")
		os.WriteFile(p, b, 0o600)
		out[name] = p
	}
	n := len(data)
	for _, cut := range []int{100, n / 4, n / 2, 3 * n / 4, n - 3000, n - 1} {
		put(fmt.Sprintf("cut-at-%d", cut), data[:cut])
	}
	flip := bytes.Clone(data)
	flip[2*n/3] ^= 0x20
	put("byte-changed-in-store", flip)
	hdr := bytes.Clone(data)
	hdr[1024+10] ^= 0x01 // the second entry's name (the manifest is a header and a block)
	put("byte-changed-in-header", hdr)
	// More than kv.ReadStream reads ahead (64 KiB), so that the pipe
	// still holds bytes when the stream has ended: a restore that did
	// not look would wait for ever. (A shorter tail is read ahead and
	// dropped; the stream before it is whole, by its digest.)
	put("bytes-after-the-stream", withTail(t, data, bytes.Repeat([]byte("junk"), 40<<10)))
	return out
}

// withTail rewrites a plain archive with tail after the end of its store
// stream (in its last chunk), the trailer counting it: only the stream
// itself can tell.
func withTail(t *testing.T, data, tail []byte) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	var prev []byte
	var prevName string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name == trailerName {
			tarAdd(tw, prevName, append(prev, tail...))
			var tl Trailer
			json.Unmarshal(b, &tl)
			tl.Bytes += int64(len(tail))
			b, _ = json.Marshal(tl)
		} else if prev != nil {
			tarAdd(tw, prevName, prev)
		}
		prev, prevName = nil, ""
		if strings.HasPrefix(h.Name, storePrefix) {
			prev, prevName = b, h.Name
			continue
		}
		tarAdd(tw, h.Name, b)
	}
	tw.Close()
	return out.Bytes()
}

// TestRestoreAllOrNothing: a restore of a truncated or damaged backup,
// into a data directory and into PostgreSQL, fails and leaves the target
// as empty as it was (the database without a single pair, the directory
// without a file), after having loaded most of the store in several
// commits; the same target then takes the good backup, whose mailboxes
// all get new UIDVALIDITYs, with mail, flags and records intact.
func TestRestoreAllOrNothing(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	if src.size < 8<<20 {
		t.Fatalf("the backup is only %d bytes", src.size)
	}
	bad := damaged(t, src)

	t.Run("badger", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "r")
		so := mailbox.Options{Dir: dir, Logger: quiet, GCInterval: -1}
		for name, file := range bad {
			if _, err := Restore(ctx, so, file, RestoreOptions{}); err == nil {
				t.Fatalf("%s: restored", name)
			}
			dirEmpty(t, dir, name)
		}
		rr, err := Restore(ctx, so, src.archive, RestoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rr.Renumbered == nil || rr.Renumbered.Mailboxes != len(src.boxes) {
			t.Fatalf("renumbered %+v, %d mailboxes", rr.Renumbered, len(src.boxes))
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "gateway.key")); string(data) != "KEY" {
			t.Errorf("gateway.key: %q", data)
		}
		src.checkRestored(t, so, true)
	})

	t.Run("postgres", func(t *testing.T) {
		dsn := pg.DB(t)
		dir := filepath.Join(t.TempDir(), "files")
		for name, file := range bad {
			so, _ := pgTarget(t, dsn, dir)
			_, err := Restore(ctx, so, file, RestoreOptions{})
			if err == nil {
				t.Fatalf("%s: restored", name)
			}
			if errors.Is(err, mailbox.ErrIncomplete) {
				t.Fatalf("%s: the database kept part of it: %v", name, err)
			}
			pgEmpty(t, dsn, name)
			dirEmpty(t, dir, name)
		}
		so, _ := pgTarget(t, dsn, dir)
		rr, err := Restore(ctx, so, src.archive, RestoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rr.Trailer.Pairs != src.pairs || rr.Renumbered.Mailboxes != len(src.boxes) {
			t.Fatalf("restored %+v", rr)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "gateway.key")); string(data) != "KEY" {
			t.Errorf("gateway.key: %q", data)
		}
		so, _ = pgTarget(t, dsn, dir)
		src.checkRestored(t, so, true)

		// A database holding a store is no target: refused before a
		// file is written or a pair touched.
		before := auxRecords(t, openPGFor(t, dsn))
		dir2 := filepath.Join(t.TempDir(), "files2")
		so, _ = pgTarget(t, dsn, dir2)
		if _, err := Restore(ctx, so, src.archive, RestoreOptions{DiscardIncomplete: true}); !errors.Is(err, mailbox.ErrNotEmpty) {
			t.Fatalf("a restore over a store: %v", err)
		}
		dirEmpty(t, dir2, "refused restore")
		if after := auxRecords(t, openPGFor(t, dsn)); len(after) != len(before) || len(after) == 0 {
			t.Fatalf("records %d before a refused restore, %d after", len(before), len(after))
		}
	})

	t.Run("stopped", func(t *testing.T) {
		// Ctrl-C half way: the restore stops and deletes what it wrote.
		dsn := pg.DB(t)
		dir := filepath.Join(t.TempDir(), "files")
		so, _ := pgTarget(t, dsn, dir)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		meter := &trip{at: src.size / 2, fn: cancel}
		_, err := Restore(cctx, so, src.archive, RestoreOptions{Count: meter})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("a stopped restore: %v", err)
		}
		pgEmpty(t, dsn, "stopped")
		dirEmpty(t, dir, "stopped")
	})
}

// openPGFor opens the database of dsn for the rest of the test.
func openPGFor(t *testing.T, dsn string) kv.Engine {
	e := openPG(t, dsn)
	t.Cleanup(func() { e.Close() })
	return e
}

// trip calls fn once at bytes have been written to it (a progress meter
// that stops or breaks something half way).
type trip struct {
	at, n int64
	fn    func()
	done  bool
}

func (w *trip) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	if w.n >= w.at && !w.done {
		w.done = true
		w.fn()
	}
	return len(p), nil
}

// TestRestoreDatabaseGoesAway: PostgreSQL stops half way through a
// restore. What was written cannot be deleted, so it stays, marked: the
// error says so, no store opens on it (a server would serve part of the
// mail), a plain restore is refused, naming the unfinished one, and a
// restore with DiscardIncomplete empties it and restores.
func TestRestoreDatabaseGoesAway(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	c := pgtest.Start(t) // a cluster of its own: this test stops it
	name, err := c.CreateSchema("goes_away")
	if err != nil {
		t.Fatal(err)
	}
	dsn := c.SchemaDSN(name)
	dir := filepath.Join(t.TempDir(), "files")
	so, _ := pgTarget(t, dsn, dir)
	meter := &trip{at: src.size * 2 / 3, fn: func() { c.Down(t) }}
	_, err = Restore(ctx, so, src.archive, RestoreOptions{Count: meter})
	if !errors.Is(err, mailbox.ErrIncomplete) {
		t.Fatalf("a restore whose database went away: %v", err)
	}
	if !meter.done {
		t.Fatal("the database was not stopped")
	}
	dirEmpty(t, dir, "database gone")
	c.Up(t)

	e := openPG(t, dsn)
	if empty, err := kv.IsEmpty(e); err != nil || empty {
		t.Fatalf("the database after the failed restore: empty %v, %v (the test stopped it too late)", empty, err)
	}
	if _, err := mailbox.Open(mailbox.Options{Engine: e, Logger: quiet, Brief: true}); !errors.Is(err, mailbox.ErrIncomplete) ||
		!strings.Contains(err.Error(), src.archive) {
		t.Fatalf("a store opened on part of a restore: %v", err)
	}
	so, _ = pgTarget(t, dsn, dir)
	if _, err := Restore(ctx, so, src.archive, RestoreOptions{}); !errors.Is(err, mailbox.ErrIncomplete) {
		t.Fatalf("a restore over an unfinished one: %v", err)
	}
	dirEmpty(t, dir, "refused")
	so, _ = pgTarget(t, dsn, dir)
	if _, err := Restore(ctx, so, src.archive, RestoreOptions{DiscardIncomplete: true}); err != nil {
		t.Fatal(err)
	}
	so, _ = pgTarget(t, dsn, dir)
	src.checkRestored(t, so, true)
}

// TestMigrateAllOrNothing: a migration stopped half way leaves the
// destination empty; one into a destination marked by an unfinished load
// is refused unless told to discard it; one from such a source is
// refused; a migration keeps every UIDVALIDITY (clients keep their
// caches), with mail, flags and records intact.
func TestMigrateAllOrNothing(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	from, err := OpenStore(ctx, src.dir, OpenOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	dsn := pg.DB(t)
	to := openPGFor(t, dsn)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, _, err := Copy(cctx, from, to, CopyOptions{Count: &trip{at: 6 << 20, fn: cancel}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a stopped migration: %v", err)
	}
	pgEmpty(t, dsn, "stopped migration")

	// An unfinished load's mark, as a killed migration leaves it, with
	// part of the store.
	if err := mailbox.BeginLoad(to, mailbox.NewLoadMark("migrate", "killed"), false); err != nil {
		t.Fatal(err)
	}
	if err := kv.Update(to, func(tx kv.Txn) error { return tx.Set([]byte(keyspace.Account+"half"), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Copy(ctx, from, to, CopyOptions{}); !errors.Is(err, mailbox.ErrIncomplete) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("a migration into an unfinished one: %v", err)
	}
	if _, _, err := Copy(ctx, to, from, CopyOptions{}); !errors.Is(err, mailbox.ErrIncomplete) {
		t.Fatalf("a migration from an unfinished one: %v", err)
	}
	pairs, _, err := Copy(ctx, from, to, CopyOptions{DiscardIncomplete: true})
	if err != nil || pairs < src.pairs {
		t.Fatalf("migrated %d pairs of %d: %v", pairs, src.pairs, err)
	}
	if rep, err := Compare(from, to); err != nil || !rep.OK() || rep.Source.Keys != pairs {
		t.Fatalf("compare: %+v %v", rep, err)
	}
	// DiscardIncomplete never empties a finished store.
	if _, _, err := Copy(ctx, from, to, CopyOptions{DiscardIncomplete: true}); !errors.Is(err, mailbox.ErrNotEmpty) {
		t.Fatalf("a migration over a store: %v", err)
	}
	if _, err := mailbox.DiscardLoad(to); err == nil {
		t.Fatal("a finished store was discarded")
	}
	so, _ := pgTarget(t, dsn, t.TempDir())
	src.checkRestored(t, so, false)
}

// TestRestoreKilledIntoDataDirectory: a data directory left by a restore
// that was killed (its store holds part of the backup, marked) opens
// nowhere, is refused by a plain restore and migrate, and is emptied and
// restored into with DiscardIncomplete, which refuses a directory holding
// a finished store and leaves it as it was.
func TestRestoreKilledIntoDataDirectory(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	dir := filepath.Join(t.TempDir(), "killed")
	if err := mailbox.PrepareDataDir(dir, quiet); err != nil {
		t.Fatal(err)
	}
	e, err := badgerkv.Open(badgerkv.Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := mailbox.BeginLoad(e, mailbox.NewLoadMark("restore", src.archive), false); err != nil {
		t.Fatal(err)
	}
	if err := kv.Update(e, func(tx kv.Txn) error { return tx.Set([]byte(keyspace.Account+"alice"), []byte("{}")) }); err != nil {
		t.Fatal(err)
	}
	e.Close()

	so := mailbox.Options{Dir: dir, Logger: quiet, GCInterval: -1}
	if _, err := mailbox.Open(so); !errors.Is(err, mailbox.ErrIncomplete) {
		t.Fatalf("a store opened on part of a restore: %v", err)
	}
	if _, err := Restore(ctx, so, src.archive, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "--discard-incomplete") {
		t.Fatalf("a restore into the directory of an unfinished one: %v", err)
	}
	if _, err := OpenStore(ctx, dir, OpenOptions{Create: true, Logger: quiet}); err == nil {
		t.Fatal("a migration into the directory of an unfinished restore")
	}
	if _, err := Restore(ctx, so, src.archive, RestoreOptions{DiscardIncomplete: true}); err != nil {
		t.Fatal(err)
	}
	src.checkRestored(t, so, true)

	// A finished store is never discarded.
	if _, err := Restore(ctx, so, src.archive, RestoreOptions{DiscardIncomplete: true}); err == nil || !strings.Contains(err.Error(), "refusing to empty it") {
		t.Fatalf("a restore over a finished store: %v", err)
	}
	if _, err := OpenStore(ctx, dir, OpenOptions{Create: true, DiscardIncomplete: true, Logger: quiet}); err == nil || !strings.Contains(err.Error(), "refusing to empty it") {
		t.Fatalf("a migration over a finished store: %v", err)
	}
	st, err := mailbox.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if bodies, _ := inboxes(t, st); len(bodies["alice"]) != len(src.bodies["alice"]) {
		t.Fatalf("the store after refused restores: %d messages", len(bodies["alice"]))
	}
}
