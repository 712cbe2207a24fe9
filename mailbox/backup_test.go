package mailbox

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// TestBackupRestore backs up a store with messages, flags and an extra
// mailbox, restores it (encrypted) into a new directory, and compares.
// Backup is Badger's own format: on either suite engine it runs on Badger.
func TestBackupRestore(t *testing.T) {
	src := openBadgerAt(t, Options{Dir: t.TempDir(), GCInterval: -1})
	t.Cleanup(func() { src.Close() })
	if err := src.CreateAccount("carol", "pw", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	if err := src.Update(func(tx *Tx) error {
		if _, err := tx.CreateMailbox("carol", NewMailbox{Name: "Work/2024", Subscribed: true}); err != nil {
			return err
		}
		for i := 0; i < 5; i++ {
			flags := []string{`\Seen`}
			if i%2 == 0 {
				flags = append(flags, "$Important")
			}
			if _, err := tx.Append("carol", "INBOX", []byte(fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i)), AppendOptions{Flags: flags}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := src.Backup(&buf); err != nil {
		t.Fatal(err)
	}

	key := make([]byte, 32)
	rand.Read(key)
	dir := filepath.Join(t.TempDir(), "restored")
	opts := Options{Dir: dir, GCInterval: -1, EncryptionKey: key}
	lo := LoadOptions{Mark: NewLoadMark("restore", "test"), NewUIDValidity: true}
	res, err := Restore(opts, bytes.NewReader(buf.Bytes()), lo)
	if err != nil {
		t.Fatal(err)
	}
	// A second restore into the same directory is refused.
	if _, err := Restore(opts, bytes.NewReader(buf.Bytes()), lo); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore over data: %v", err)
	}
	dst, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := dst.Authenticate("carol", "pw"); err != nil {
		t.Fatalf("password after restore: %v", err)
	}
	// The restored store resumes above the source's MODSEQ reserve, as
	// after a crash (modseq.go): no MODSEQ the source handed out comes
	// back with another meaning.
	if inbox, err := dst.Mailbox("carol", "INBOX"); err != nil {
		t.Fatal(err)
	} else if got := highest(t, dst, "carol", inbox.ID).HighestModSeq; got < src.modseqReserve {
		t.Errorf("restored HIGHESTMODSEQ %d, below the source's reserve %d", got, src.modseqReserve)
	}
	// Every mailbox has a new UIDVALIDITY, above the source's (RFC 3501
	// 2.3.1.1: the backup's UIDs will be handed out again); the rest is
	// as it was.
	oldBoxes, _ := src.ListMailboxes("carol")
	newBoxes, _ := dst.ListMailboxes("carol")
	if len(newBoxes) != len(oldBoxes) || res.Renumbered == nil || res.Renumbered.Mailboxes != len(oldBoxes) {
		t.Fatalf("renumbered %+v, %d mailboxes of %d", res.Renumbered, len(newBoxes), len(oldBoxes))
	}
	for i, mb := range newBoxes {
		if mb.UIDValidity <= oldBoxes[i].UIDValidity || mb.UIDValidity < res.Renumbered.First || mb.UIDValidity > res.Renumbered.Last {
			t.Errorf("%s: UIDVALIDITY %d after restore, %d before (new ones %+v)", mb.Name, mb.UIDValidity, oldBoxes[i].UIDValidity, res.Renumbered)
		}
	}
	uv := regexp.MustCompile(` uv=\d+`)
	want := dumpAccount(t, src, "carol")
	got := dumpAccount(t, dst, "carol")
	for i := range want {
		want[i] = uv.ReplaceAllString(want[i], "")
	}
	for i := range got {
		got[i] = uv.ReplaceAllString(got[i], "")
	}
	if !slices.Equal(got, want) {
		t.Fatalf("restored store differs:\n got %q\nwant %q", got, want)
	}
	// Without the key the restored store does not open.
	if s, err := Open(Options{Dir: dir, GCInterval: -1}); err == nil {
		s.Close()
		t.Fatal("encrypted store opened without its key")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

// dumpAccount lists every mailbox with its UIDVALIDITY and every message
// with its UID, flags and bytes.
func dumpAccount(t *testing.T, s *Store, acct string) []string {
	t.Helper()
	boxes, err := s.ListMailboxes(acct)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mb := range boxes {
		out = append(out, fmt.Sprintf("box %s uv=%d next=%d sub=%v", mb.Name, mb.UIDValidity, mb.UIDNext, mb.Subscribed))
		msgs, err := s.Messages(acct, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			raw, err := s.Raw(m.Blob)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("  uid=%d flags=%v %q", m.UID, m.Flags, raw))
		}
	}
	return out
}

func TestMaxMailboxesOption(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), GCInterval: -1, MaxMailboxes: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateAccount("dave", "pw", DefaultMailboxes()); err != nil { // 6 mailboxes
		t.Fatal(err)
	}
	create := func(name string) error {
		return s.Update(func(tx *Tx) error {
			_, err := tx.CreateMailbox("dave", NewMailbox{Name: name})
			return err
		})
	}
	for _, n := range []string{"a", "b"} {
		if err := create(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := create("c"); !errors.Is(err, ErrTooManyMailboxes) {
		t.Fatalf("9th mailbox: %v", err)
	}
	// Deleting one makes room again.
	if err := s.DeleteMailbox("dave", "a"); err != nil {
		t.Fatal(err)
	}
	if err := create("c"); err != nil {
		t.Fatalf("after delete: %v", err)
	}
}

func TestWrongEncryptionKey(t *testing.T) {
	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	s, err := Open(Options{Dir: dir, GCInterval: -1, EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount("erin", "pw", nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	other := make([]byte, 32)
	rand.Read(other)
	for name, k := range map[string][]byte{"wrong key": other, "no key": nil} {
		if s, err := Open(Options{Dir: dir, GCInterval: -1, EncryptionKey: k}); !errors.Is(err, ErrWrongKey) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("%s: %v", name, err)
		}
	}
}
