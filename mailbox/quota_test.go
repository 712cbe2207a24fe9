package mailbox

import (
	"errors"
	"strings"
	"testing"
)

func quotaOf(t *testing.T, s *Store, acct string) Quota {
	t.Helper()
	q, err := s.Quota(acct)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func appendSized(t *testing.T, s *Store, acct, mbox string, n, size int) error {
	t.Helper()
	return s.Update(func(tx *Tx) error {
		for range n {
			if _, err := tx.Append(acct, mbox, []byte(strings.Repeat("x", size)), AppendOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestQuotaUsage: the counter follows every way a message comes and
// goes, in the transaction that moves it: append, copy, move (no change),
// expunge, a mailbox deleted, an account deleted and made again.
func TestQuotaUsage(t *testing.T) {
	s := openTestStore(t)
	if err := s.CreateAccount("alice", "pw", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	want := func(bytes, msgs int64) {
		t.Helper()
		if q := quotaOf(t, s, "alice"); q.StorageUsed != bytes || q.MessagesUsed != msgs {
			t.Fatalf("usage %d bytes, %d messages; want %d, %d", q.StorageUsed, q.MessagesUsed, bytes, msgs)
		}
	}
	want(0, 0)
	if err := appendSized(t, s, "alice", "INBOX", 3, 100); err != nil {
		t.Fatal(err)
	}
	want(300, 3)
	inbox, _ := s.Mailbox("alice", "INBOX")
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.Copy("alice", inbox.ID, []uint32{1, 2}, "Archive")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want(500, 5)
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.Move("alice", inbox.ID, []uint32{3}, "Trash")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want(500, 5)
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.Expunge("alice", inbox.ID, []uint32{1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want(400, 4)
	if err := s.DeleteMailbox("alice", "Archive"); err != nil {
		t.Fatal(err)
	}
	want(200, 2)
	if err := s.Update(func(tx *Tx) error { return tx.AdjustUsage("alice", 1000, 0) }); err != nil {
		t.Fatal(err)
	}
	want(1200, 2)

	// A store from before the counter: counted from the mailboxes once.
	if err := s.Update(func(tx *Tx) error { return tx.del(usageKey("alice")) }); err != nil {
		t.Fatal(err)
	}
	want(200, 2)
	if err := appendSized(t, s, "alice", "INBOX", 1, 50); err != nil {
		t.Fatal(err)
	}
	want(250, 3)

	if err := s.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount("alice", "pw", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	want(0, 0)
}

// TestQuotaLimits: the store's default and an account's own limits;
// APPEND and COPY past one are refused with ErrOverQuota and change
// nothing; MOVE and EXPUNGE stay allowed over the limit; a message
// counted already (a released certified item) is not checked.
func TestQuotaLimits(t *testing.T) {
	s := openAt(t, Options{Dir: t.TempDir(), GCInterval: -1, QuotaMessages: 3})
	t.Cleanup(func() { s.Close() })
	if err := s.CreateAccount("bob", "pw", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	if q := quotaOf(t, s, "bob"); q.MessagesLimit != 3 || q.StorageLimit != 0 {
		t.Fatalf("default limits: %+v", q)
	}
	if err := appendSized(t, s, "bob", "INBOX", 3, 10); err != nil {
		t.Fatal(err)
	}
	if err := appendSized(t, s, "bob", "INBOX", 1, 10); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("fourth message: %v, want ErrOverQuota", err)
	}
	storage := int64(35)
	unlimited := int64(0)
	if err := s.SetQuota("bob", &storage, &unlimited); err != nil {
		t.Fatal(err)
	}
	if q := quotaOf(t, s, "bob"); q.MessagesLimit != 0 || q.StorageLimit != 35 || q.StorageUsed != 30 {
		t.Fatalf("own limits: %+v", q)
	}
	if err := appendSized(t, s, "bob", "INBOX", 1, 6); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("past the storage limit: %v", err)
	}
	if err := appendSized(t, s, "bob", "INBOX", 1, 5); err != nil {
		t.Fatalf("up to the storage limit: %v", err)
	}
	inbox, _ := s.Mailbox("bob", "INBOX")
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.Copy("bob", inbox.ID, []uint32{1}, "Archive")
		return err
	}); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("COPY past the limit: %v", err)
	}
	if q := quotaOf(t, s, "bob"); q.StorageUsed != 35 || q.MessagesUsed != 4 {
		t.Fatalf("a refused COPY changed the usage: %+v", q)
	}
	// The limit lowered below the usage: moving and removing go on.
	lower := int64(20)
	if err := s.SetQuota("bob", &lower, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.Move("bob", inbox.ID, []uint32{1, 2}, "Archive")
		return err
	}); err != nil {
		t.Fatalf("MOVE over the limit: %v", err)
	}
	blob := mustBlob(t, s, 50)
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.AppendBlob("bob", "INBOX", blob, AppendOptions{QuotaExempt: true})
		return err
	}); err != nil {
		t.Fatalf("a message counted already: %v", err)
	}
	def := QuotaDefault
	if err := s.SetQuota("bob", &def, &def); err != nil {
		t.Fatal(err)
	}
	if q := quotaOf(t, s, "bob"); q.MessagesLimit != 3 || q.StorageLimit != 0 {
		t.Fatalf("back on the defaults: %+v", q)
	}
	neg := int64(-5)
	if err := s.SetQuota("bob", &neg, nil); err == nil {
		t.Fatalf("a negative limit was taken")
	}
}

func mustBlob(t *testing.T, s *Store, size int) uint64 {
	t.Helper()
	var id uint64
	if err := s.Update(func(tx *Tx) error {
		var err error
		id, err = tx.PutBlob([]byte(strings.Repeat("m", size)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return id
}
