package mailbox

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// TestSubscriptionOutlivesMailbox: deleting a subscribed mailbox leaves
// its name subscribed (RFC 3501 6.3.9); a mailbox created again under
// the name, or renamed to it, takes the subscription back; the name can
// be unsubscribed while no mailbox has it; deleting the account drops
// what is kept.
func TestSubscriptionOutlivesMailbox(t *testing.T) {
	s := openTestStore(t)
	newAccount(t, s, "bob")
	update := func(fn func(tx *Tx) error) {
		t.Helper()
		if err := s.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	subs := func() []string {
		t.Helper()
		var out []string
		if err := s.View(func(tx *Tx) error {
			var err error
			out, err = tx.Subscriptions("bob")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	subscribed := func(name string) bool {
		t.Helper()
		mb, err := s.Mailbox("bob", name)
		if err != nil {
			t.Fatal(err)
		}
		return mb.Subscribed
	}
	update(func(tx *Tx) error {
		for _, n := range []string{"News", "Lists", "Other"} {
			if _, err := tx.CreateMailbox("bob", NewMailbox{Name: n}); err != nil {
				return err
			}
		}
		if err := tx.SetSubscribed("bob", "News", true); err != nil {
			return err
		}
		return tx.SetSubscribed("bob", "Lists", true)
	})
	for _, n := range []string{"News", "Lists", "Other"} {
		if err := s.DeleteMailbox("bob", n); err != nil {
			t.Fatal(err)
		}
	}
	if got := subs(); !slices.Equal(got, []string{"Lists", "News"}) {
		t.Fatalf("kept subscriptions: %q, want Lists, News", got)
	}
	// Created again: subscribed, no longer kept apart.
	update(func(tx *Tx) error {
		_, err := tx.CreateMailbox("bob", NewMailbox{Name: "News"})
		return err
	})
	if !subscribed("News") {
		t.Error("News created again is not subscribed")
	}
	// Renamed to a kept name: subscribed.
	update(func(tx *Tx) error {
		if _, err := tx.CreateMailbox("bob", NewMailbox{Name: "Tmp"}); err != nil {
			return err
		}
		return tx.RenameMailbox("bob", "Tmp", "Lists")
	})
	if !subscribed("Lists") {
		t.Error("a mailbox renamed to Lists is not subscribed")
	}
	if got := subs(); len(got) != 0 {
		t.Errorf("kept subscriptions after re-creation: %q", got)
	}
	// Unsubscribing a name without a mailbox.
	if err := s.DeleteMailbox("bob", "News"); err != nil {
		t.Fatal(err)
	}
	update(func(tx *Tx) error { return tx.SetSubscribed("bob", "News", false) })
	if got := subs(); len(got) != 0 {
		t.Errorf("after UNSUBSCRIBE: %q", got)
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetSubscribed("bob", "News", false) }); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("unsubscribing a name neither subscribed nor a mailbox: %v, want ErrNoMailbox", err)
	}
	// The account's deletion takes kept subscriptions along.
	if err := s.DeleteMailbox("bob", "Lists"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount("bob"); err != nil {
		t.Fatal(err)
	}
	newAccount(t, s, "bob")
	if got := subs(); len(got) != 0 {
		t.Errorf("a new bob inherits subscriptions %q", got)
	}
}

// TestSubscriptionChangeFeed: SUBSCRIBE and UNSUBSCRIBE reach the change
// feed (IMAP NOTIFY's SubscriptionChange, RFC 5465 5.7), also for a kept
// name no mailbox has; subscribing what is subscribed already says nothing.
func TestSubscriptionChangeFeed(t *testing.T) {
	s := openTestStore(t)
	newAccount(t, s, "bob")
	var mu sync.Mutex
	var got []string
	s.OnChange(func(c Change) {
		mu.Lock()
		defer mu.Unlock()
		switch c.Kind {
		case MailboxSubscribed:
			got = append(got, fmt.Sprintf("+%s/%v", c.Mailbox, c.MailboxID != 0))
		case MailboxUnsubscribed:
			got = append(got, fmt.Sprintf("-%s/%v", c.Mailbox, c.MailboxID != 0))
		}
	})
	steps := []func(tx *Tx) error{
		func(tx *Tx) error { _, err := tx.CreateMailbox("bob", NewMailbox{Name: "News"}); return err },
		func(tx *Tx) error { return tx.SetSubscribed("bob", "News", true) },
		func(tx *Tx) error { return tx.SetSubscribed("bob", "News", true) },
	}
	for i, step := range steps {
		if err := s.Update(step); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := s.DeleteMailbox("bob", "News"); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.SetSubscribed("bob", "News", false) }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"+News/true", "-News/false"}; !slices.Equal(got, want) {
		t.Fatalf("changes %q, want %q", got, want)
	}
}
