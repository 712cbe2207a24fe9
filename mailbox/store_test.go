package mailbox

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"certmail/kv/testengine"
)

// engines is the engine the suite runs on: Badger, or PostgreSQL with
// CERTMAIL_TEST_ENGINE=postgres (kv/testengine).
var engines testengine.Engines

func TestMain(m *testing.M) { os.Exit(engines.Main(m)) }

func openTestStore(t testing.TB) *Store {
	t.Helper()
	s := openAt(t, Options{Dir: t.TempDir(), GCInterval: -1})
	t.Cleanup(func() { s.Close() })
	return s
}

// dirDSNs maps the data directories of the tests' stores to their
// PostgreSQL schemas, so that a test that closes a store and opens it
// again on the same Dir finds its data on either engine.
var dirDSNs sync.Map

// openAt opens a store with opts, for tests that close and reopen it. On
// PostgreSQL the engine is a schema standing for opts.Dir.
func openAt(t testing.TB, opts Options) *Store {
	t.Helper()
	if engines.Postgres() && opts.Engine == nil && !opts.InMemory && opts.Dir != "" {
		dsn, ok := dirDSNs.Load(opts.Dir)
		if !ok {
			dsn, _ = dirDSNs.LoadOrStore(opts.Dir, engines.DSN(t))
		}
		opts.Engine = engines.Reopen(t, dsn.(string))
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openBadgerAt opens a store on Badger whatever the suite's engine, for
// tests of what only the Badger store does (its data directory, disk
// reserve, encryption, backup format).
func openBadgerAt(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newAccount creates an account with the default mailboxes and returns its
// INBOX.
func newAccount(t testing.TB, s *Store, acct string) *MailboxInfo {
	t.Helper()
	if err := s.CreateAccount(acct, "pw", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	inbox, err := s.Mailbox(acct, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return inbox
}

func TestAccountLifecycle(t *testing.T) {
	s := openTestStore(t)
	if err := s.CreateAccount("Alice", "pw", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount("alice", "pw", nil); !errors.Is(err, ErrAccountExists) {
		t.Fatalf("duplicate account: got %v", err)
	}
	if acct, err := s.Authenticate("ALICE", "pw"); err != nil || acct != "alice" {
		t.Fatalf("authenticate: %q %v", acct, err)
	}
	if _, err := s.Authenticate("alice", "wrong"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := s.SetPassword("alice", "new", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate("alice", "pw"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("old password after change: %v", err)
	}
	boxes, err := s.ListMailboxes("alice")
	if err != nil || len(boxes) != 6 {
		t.Fatalf("mailboxes: %v %v", boxes, err)
	}
	if err := s.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AccountExists("alice"); ok {
		t.Fatal("account still exists")
	}
}

func TestAppendFlagsExpungeAndChanges(t *testing.T) {
	s := openTestStore(t)
	if err := s.CreateAccount("bob", "pw", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	inbox, _ := s.Mailbox("bob", "inbox")
	if _, err := s.Messages("bob", inbox.ID); err != nil { // load the index
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	s.OnChange(func(c Change) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%d seq=%d count=%d", c.Kind, c.Seq, c.Count))
	})
	for i := 0; i < 3; i++ {
		if err := s.Update(func(tx *Tx) error {
			_, err := tx.Append("bob", "INBOX", []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)), AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.SetFlags("bob", inbox.ID, []uint32{2}, FlagsAdd, []string{`\deleted`, "$Label1"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var gone []uint32
	if err := s.Update(func(tx *Tx) error {
		var err error
		gone, err = tx.Expunge("bob", inbox.ID, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(gone) != "[2]" {
		t.Fatalf("expunged %v", gone)
	}
	msgs, _ := s.Messages("bob", inbox.ID)
	if len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 3 {
		t.Fatalf("messages after expunge: %+v", msgs)
	}
	want := "[1 seq=1 count=1 1 seq=2 count=2 1 seq=3 count=3 2 seq=2 count=3 3 seq=2 count=2]"
	if fmt.Sprint(got) != want {
		t.Fatalf("changes:\n got %v\nwant %v", got, want)
	}
	// Copy shares the blob; expunging the original keeps the copy readable.
	var cr *CopyResult
	if err := s.Update(func(tx *Tx) error {
		var err error
		cr, err = tx.Move("bob", inbox.ID, []uint32{1}, "Archive")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	arch, _ := s.Mailbox("bob", "Archive")
	am, _ := s.Messages("bob", arch.ID)
	if len(am) != 1 || cr.DestUIDs[0] != 1 {
		t.Fatalf("archive: %+v %+v", am, cr)
	}
	raw, err := s.Raw(am[0].Blob)
	if err != nil || string(raw) != "Subject: 0\r\n\r\nbody\r\n" {
		t.Fatalf("raw after move: %q %v", raw, err)
	}
}

func TestRenameInbox(t *testing.T) {
	s := openTestStore(t)
	s.CreateAccount("c", "pw", DefaultMailboxes())
	s.Update(func(tx *Tx) error {
		_, err := tx.Append("c", "INBOX", []byte("Subject: x\r\n\r\n"), AppendOptions{})
		return err
	})
	if err := s.Update(func(tx *Tx) error { return tx.RenameMailbox("c", "INBOX", "Old") }); err != nil {
		t.Fatal(err)
	}
	_, st, err := s.Status("c", "Old")
	if err != nil || st.Messages != 1 {
		t.Fatalf("Old: %+v %v", st, err)
	}
	_, st, err = s.Status("c", "INBOX")
	if err != nil || st.Messages != 0 {
		t.Fatalf("INBOX: %+v %v", st, err)
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.CreateAccount("d", "pw", DefaultMailboxes())
	var res *AppendResult
	s.Update(func(tx *Tx) error {
		res, err = tx.Append("d", "INBOX", []byte("Subject: x\r\n\r\n"), AppendOptions{Flags: []string{`\Flagged`}})
		return err
	})
	s.Close()
	s, err = Open(Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mb, st, err := s.Status("d", "INBOX")
	if err != nil || st.Messages != 1 || mb.UIDValidity != res.UIDValidity || mb.UIDNext != 2 {
		t.Fatalf("after reopen: %+v %+v %v", mb, st, err)
	}
	msgs, _ := s.Messages("d", mb.ID)
	if !msgs[0].HasFlag(`\flagged`) {
		t.Fatalf("flags lost: %+v", msgs[0])
	}
}

func BenchmarkAppend(b *testing.B) {
	s := openTestStore(b)
	s.CreateAccount("bench", "pw", DefaultMailboxes())
	raw := make([]byte, 8<<10)
	b.SetBytes(int64(len(raw)))
	defer roundTrips(b, s)()
	for b.Loop() {
		if err := s.Update(func(tx *Tx) error {
			_, err := tx.Append("bench", "INBOX", raw, AppendOptions{})
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetFlags(b *testing.B) {
	s := openTestStore(b)
	s.CreateAccount("bench", "pw", DefaultMailboxes())
	s.Update(func(tx *Tx) error {
		_, err := tx.Append("bench", "INBOX", []byte("Subject: x\r\n\r\n"), AppendOptions{})
		return err
	})
	mb, _ := s.Mailbox("bench", "INBOX")
	ops := []FlagOp{FlagsAdd, FlagsRemove}
	defer roundTrips(b, s)()
	i := 0
	for b.Loop() {
		i++
		s.Update(func(tx *Tx) error {
			_, err := tx.SetFlags("bench", mb.ID, []uint32{1}, ops[i%2], []string{`\Seen`})
			return err
		})
	}
}

// TestOrphanedMessagesCollected: a crash between DeleteMailbox's removal
// of the mailbox record and of its messages leaves message records behind;
// the next Open removes them (and their blobs' references), so an account
// deleted and created again does not find its predecessor's mail.
func TestOrphanedMessagesCollected(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, Options{Dir: dir, GCInterval: -1})
	inbox := newAccount(t, s, "erin")
	for i := 0; i < 3; i++ {
		if err := s.Update(func(tx *Tx) error {
			_, err := tx.Append("erin", "INBOX", []byte(fmt.Sprintf("Subject: secret %d\r\n\r\nbody\r\n", i)), AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// An expunge, so that the change log has both kinds of entry.
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.Expunge("erin", inbox.ID, []uint32{1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The crash: the account and mailbox records go, the messages stay.
	if err := s.Update(func(tx *Tx) error {
		boxes, err := tx.ListMailboxes("erin")
		if err != nil {
			return err
		}
		for _, mb := range boxes {
			if err := tx.del(mailboxKey("erin", mb.Name)); err != nil {
				return err
			}
			if err := tx.del(mailboxIDKey("erin", mb.ID)); err != nil {
				return err
			}
		}
		return tx.del(accountKey("erin"))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openAt(t, Options{Dir: dir, GCInterval: -1})
	defer s.Close()
	// Nothing is left under the old mailbox's ID, messages or change log...
	for _, prefix := range [][]byte{messagePrefix("erin", inbox.ID),
		modseqBoxPrefix(prefixVanished, "erin", inbox.ID)} {
		if err := s.View(func(tx *Tx) error {
			return tx.scan(prefix, true, func(k, _ []byte) error {
				return fmt.Errorf("key %q survived", k)
			})
		}); err != nil {
			t.Fatal(err)
		}
	}
	// ... so the new account's INBOX, of the same ID, is empty.
	if err := s.CreateAccount("erin", "pw2", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	again, _ := s.Mailbox("erin", "INBOX")
	if again.ID != inbox.ID {
		t.Logf("INBOX ID %d, was %d", again.ID, inbox.ID)
	}
	msgs, err := s.Messages("erin", again.ID)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("new account's INBOX holds %d messages (%v)", len(msgs), err)
	}
	// Nothing to collect the next time.
	if n, err := s.collectOrphanMessages(); n != 0 || err != nil {
		t.Fatalf("second collection: %d %v", n, err)
	}
}
