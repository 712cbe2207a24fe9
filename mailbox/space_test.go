package mailbox

import (
	"errors"
	"testing"
)

// TestDiskReserve: with less free space than the reserve (here a reserve
// no disk has), every message write is refused with ErrDiskFull, and so
// is any write once below half the reserve, while reads go on. The
// filesystem part is tested against the real server on a full tmpfs
// (interop TestDiskFull).
func TestDiskReserve(t *testing.T) {
	dir := t.TempDir()
	s := openBadgerAt(t, Options{Dir: dir, DiskReserve: -1})
	inbox := newAccount(t, s, "alice")
	raw := []byte("Subject: kept\r\n\r\nbody\r\n")
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.Append("alice", "INBOX", raw, AppendOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBadgerAt(t, Options{Dir: dir, DiskReserve: 1 << 62})
	defer s.Close()
	if err := s.CheckSpace(1); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("CheckSpace: %v, want ErrDiskFull", err)
	}
	err := s.Update(func(tx *Tx) error {
		_, err := tx.Append("alice", "INBOX", raw, AppendOptions{})
		return err
	})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Append: %v, want ErrDiskFull", err)
	}
	err = s.Update(func(tx *Tx) error {
		_, err := tx.CreateMailbox("alice", NewMailbox{Name: "Later"})
		return err
	})
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("CreateMailbox below half the reserve: %v, want ErrDiskFull", err)
	}
	msgs, err := s.Messages("alice", inbox.ID)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Messages on a full disk: %d, %v", len(msgs), err)
	}
	got, err := s.Raw(msgs[0].Blob)
	if err != nil || string(got) != string(raw) {
		t.Fatalf("Raw on a full disk: %q, %v", got, err)
	}
	if _, err := s.Authenticate("alice", "pw"); err != nil {
		t.Fatalf("Authenticate on a full disk: %v", err)
	}
}
