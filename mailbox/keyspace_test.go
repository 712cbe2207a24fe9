package mailbox

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"certmail/kv/keyspace"
)

// TestAuxWriteOutsideClaims: the packages above the store write only
// under the prefixes they claim in kv/keyspace.
func TestAuxWriteOutsideClaims(t *testing.T) {
	s := openTestStore(t)
	for _, write := range []func(tx *Tx) error{
		func(tx *Tx) error { return tx.Set([]byte("mine/1"), []byte("v")) },
		func(tx *Tx) error { return tx.Delete([]byte("mine/1")) },
		// A claim's name without its separator is not the claim.
		func(tx *Tx) error { return tx.Set([]byte("evlog"), []byte("v")) },
	} {
		if err := s.Update(write); !errors.Is(err, ErrUnclaimedKey) {
			t.Errorf("write outside the claims: %v; want ErrUnclaimedKey", err)
		}
	}
	if err := s.Update(func(tx *Tx) error { return tx.Set([]byte(keyspace.Outbox+"id/1"), []byte("v")) }); err != nil {
		t.Fatalf("write under a claim: %v", err)
	}
}

// TestEveryKeyClaimed: after accounts, mailboxes, messages, flags,
// expunges, moves, renames, deletes and timers, every key in the store is
// under a prefix claimed in kv/keyspace.
func TestEveryKeyClaimed(t *testing.T) {
	s := openAt(t, Options{Dir: t.TempDir(), GCInterval: -1, VanishedRetention: 2})
	defer s.Close()
	inbox := newAccount(t, s, "carol")
	newAccount(t, s, "dave")
	for i := range 6 {
		if err := s.Update(func(tx *Tx) error {
			_, err := tx.Append("carol", "INBOX", []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)), AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Update(func(tx *Tx) error {
		if _, err := tx.SetFlags("carol", inbox.ID, []uint32{1, 2, 3, 4}, FlagsAdd, []string{`\Deleted`, "$Label1"}); err != nil {
			return err
		}
		if _, err := tx.Expunge("carol", inbox.ID, nil); err != nil {
			return err
		}
		if _, err := tx.Move("carol", inbox.ID, []uint32{5}, "Archive"); err != nil {
			return err
		}
		return tx.ScheduleTimer(Timer{Due: time.Now().Add(time.Hour), Kind: "test", ID: "carol/1", Payload: []byte("p")})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox("carol", "Archive"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount("dave"); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = s.db.Dump(func(k, _ []byte) error {
		n++
		if keyspace.Owner(k) == "" {
			t.Errorf("key %q is under no claimed prefix", k)
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("dumping the store: %d keys, %v", n, err)
	}
}
