package mailbox

import (
	"errors"
	"fmt"
	"sort"
)

// Subscriptions are kept with the mailbox while it exists
// (MailboxInfo.Subscribed; a RENAME takes it along) and under sub/ for a
// name no mailbox has: a mailbox deleted while subscribed. RFC 3501 6.3.6 and
// 6.3.9 forbid the server to remove a name from the subscription list
// because its mailbox is gone; a mailbox created under a subscribed name
// takes the subscription back.

func subKey(acct, name string) []byte { return []byte(prefixSub + acct + "\x00" + name) }

func subPrefix(acct string) []byte { return []byte(prefixSub + acct + "\x00") }

// SetSubscribed subscribes or unsubscribes a mailbox name. Subscribing
// needs the mailbox to exist; unsubscribing works for a subscribed name
// whose mailbox is gone too.
func (tx *Tx) SetSubscribed(acct, name string, subscribed bool) error {
	mb, err := tx.Mailbox(acct, name)
	if errors.Is(err, ErrNoMailbox) && !subscribed {
		n, nerr := NormalizeMailbox(name)
		if nerr != nil {
			return nerr
		}
		_, found, gerr := tx.get(subKey(acct, n))
		if gerr != nil {
			return gerr
		}
		if !found {
			return err
		}
		tx.subscriptionChanged(acct, 0, n, false)
		return tx.del(subKey(acct, n))
	}
	if err != nil {
		return err
	}
	if mb.Subscribed != subscribed {
		tx.subscriptionChanged(acct, mb.ID, mb.Name, subscribed)
	}
	mb.Subscribed = subscribed
	return tx.putMailbox(acct, mb)
}

// subscriptionChanged tells the change feed, once the transaction
// commits, that name was subscribed or unsubscribed.
func (tx *Tx) subscriptionChanged(acct string, id uint32, name string, subscribed bool) {
	kind := MailboxUnsubscribed
	if subscribed {
		kind = MailboxSubscribed
	}
	c := Change{Kind: kind, Account: acct, MailboxID: id, Mailbox: name}
	tx.noteEvent(c) // other nodes hear of it too (follow.go)
	tx.afterCommit(func() []Change { return []Change{c} })
}

// Subscriptions returns the subscribed names that no mailbox has, sorted.
func (tx *Tx) Subscriptions(acct string) ([]string, error) {
	var out []string
	prefix := subPrefix(acct)
	err := tx.scan(prefix, true, func(k, _ []byte) error {
		out = append(out, string(k[len(prefix):]))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions of %q: %w", acct, err)
	}
	sort.Strings(out)
	return out, nil
}

// keepSubscription keeps a subscribed mailbox's name subscribed once the
// mailbox is deleted.
func (tx *Tx) keepSubscription(acct string, mb *MailboxInfo) error {
	if !mb.Subscribed {
		return nil
	}
	return tx.set(subKey(acct, mb.Name), []byte{})
}

// adoptSubscription gives a mailbox that now has a name the
// subscription kept for that name, if any.
func (tx *Tx) adoptSubscription(acct string, mb *MailboxInfo) error {
	_, found, err := tx.get(subKey(acct, mb.Name))
	if err != nil || !found {
		return err
	}
	mb.Subscribed = true
	return tx.del(subKey(acct, mb.Name))
}

// dropSubscriptions removes an account's kept subscriptions.
func (tx *Tx) dropSubscriptions(acct string) error {
	names, err := tx.Subscriptions(acct)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := tx.del(subKey(acct, n)); err != nil {
			return err
		}
	}
	return nil
}
