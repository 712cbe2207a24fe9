package mailbox

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"certmail/kv/keyspace"
)

// TestDeleteAccountEndsEverything: the AccountDeleted hooks run in the
// transaction that deletes the account (a failing hook leaves the account
// whole), CancelTimers ends the account's timers and no one else's, and an
// account created again under the name gets mailbox IDs of its own, so
// nothing of the old one can show under them.
func TestDeleteAccountEndsEverything(t *testing.T) {
	s := openTestStore(t)
	inbox := newAccount(t, s, "bob")
	newAccount(t, s, "bobby")
	oldBoxes, err := s.ListMailboxes("bob")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := s.Update(func(tx *Tx) error {
			_, err := tx.Append("bob", "INBOX", []byte(fmt.Sprintf("Subject: the old bob's %d\r\n\r\nbody\r\n", i)), AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	due := time.Now().Add(time.Hour)
	if err := s.Update(func(tx *Tx) error {
		for _, id := range []string{"bob/1/1", "bob/1/2", "bobby/1/1"} {
			if err := tx.ScheduleTimer(Timer{Due: due, Kind: "test-unread", ID: id}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	fail := true
	var ran []string
	s.AddHooks(Hooks{AccountDeleted: func(tx *Tx, acct string) error {
		ran = append(ran, acct)
		if err := tx.Set([]byte(keyspace.Certified+"test-gone/"+acct), []byte("1")); err != nil {
			return err
		}
		if n, err := tx.CancelTimers("test-unread", acct+"/"); err != nil || n != 2 {
			return fmt.Errorf("cancelled %d timers: %v", n, err)
		}
		if fail {
			return errors.New("hook refuses")
		}
		return nil
	}})

	// A failing hook: nothing happened.
	if err := s.DeleteAccount("bob"); err == nil {
		t.Fatal("deleted although a hook failed")
	}
	if ok, _ := s.AccountExists("bob"); !ok {
		t.Fatal("the account went although a hook failed")
	}
	if msgs, err := s.Messages("bob", inbox.ID); err != nil || len(msgs) != 2 {
		t.Fatalf("messages after a failed deletion: %d %v", len(msgs), err)
	}
	if err := s.View(func(tx *Tx) error {
		if _, ok, _ := tx.Get([]byte(keyspace.Certified + "test-gone/bob")); ok {
			return errors.New("the hook's write survived its failure")
		}
		if _, ok, _ := tx.TimerDue("test-unread", "bob/1/1"); !ok {
			return errors.New("a timer went although the deletion failed")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	fail = false
	if err := s.DeleteAccount("Bob"); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 2 || ran[1] != "bob" {
		t.Fatalf("hooks ran for %v", ran)
	}
	if err := s.View(func(tx *Tx) error {
		if _, ok, _ := tx.Get([]byte(keyspace.Certified + "test-gone/bob")); !ok {
			return errors.New("the hook's write is missing")
		}
		for _, id := range []string{"bob/1/1", "bob/1/2"} {
			if _, ok, _ := tx.TimerDue("test-unread", id); ok {
				return fmt.Errorf("timer %s survived", id)
			}
		}
		if _, ok, _ := tx.TimerDue("test-unread", "bobby/1/1"); !ok {
			return errors.New("bobby's timer was cancelled with bob's")
		}
		for _, mb := range oldBoxes {
			if err := tx.scan(messagePrefix("bob", mb.ID), true, func(k, _ []byte) error {
				return fmt.Errorf("message %q survived", k)
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The name again: another account, with mailbox IDs the old one never
	// had, an empty INBOX, and only its own password.
	if err := s.CreateAccount("bob", "new-pw", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	boxes, err := s.ListMailboxes("bob")
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range boxes {
		for _, old := range oldBoxes {
			if mb.ID == old.ID {
				t.Errorf("the new %s has the old %s's ID %d", mb.Name, old.Name, mb.ID)
			}
		}
		if msgs, err := s.Messages("bob", mb.ID); err != nil || len(msgs) != 0 {
			t.Errorf("the new %s holds %d messages (%v)", mb.Name, len(msgs), err)
		}
	}
	if _, err := s.Authenticate("bob", "pw"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("the old password opens the new account: %v", err)
	}
	if _, err := s.Authenticate("bob", "new-pw"); err != nil {
		t.Errorf("new password: %v", err)
	}
}
