package mailbox

import (
	"slices"
	"sync"
)

// Hooks let other packages act inside the transaction that changes a
// message, so what they write (a timer, an audit record) commits or fails
// with the change itself. Auto-forward schedules its unread timers here.
type Hooks struct {
	// AfterInsert runs when a message enters a mailbox: delivery, APPEND,
	// COPY, MOVE, or the release of a certified item.
	AfterInsert func(tx *Tx, acct string, mb *MailboxInfo, m *Message) error
	// AfterFlags runs when a message's flags change.
	AfterFlags func(tx *Tx, acct string, mboxID uint32, old, updated *Message) error
	// AccountDeleted runs in the transaction that deletes an account,
	// while its mailboxes and messages are still there: whatever the
	// account owned outside them (certified items, keys, timers,
	// policies) ends in the same commit, so that nothing of it passes to
	// a later account of the same name.
	AccountDeleted func(tx *Tx, acct string) error
	// BeforeAccountDeleted runs before that transaction, outside it, for
	// work that may be too large for one transaction (ending thousands
	// of certified items), done in transactions of its own. Whatever it
	// leaves, and whatever arrives meanwhile, AccountDeleted ends.
	BeforeAccountDeleted func(acct string) error
}

type hookList struct {
	mu    sync.RWMutex
	hooks []Hooks
}

// AddHooks registers hooks; they run in registration order.
func (s *Store) AddHooks(h Hooks) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.hooks = append(s.hooks.hooks, h)
}

func (s *Store) runInsertHooks(tx *Tx, acct string, mb *MailboxInfo, m *Message) error {
	s.hooks.mu.RLock()
	defer s.hooks.mu.RUnlock()
	for _, h := range s.hooks.hooks {
		if h.AfterInsert != nil {
			if err := h.AfterInsert(tx, acct, mb, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) runFlagHooks(tx *Tx, acct string, mboxID uint32, old, updated *Message) error {
	s.hooks.mu.RLock()
	defer s.hooks.mu.RUnlock()
	for _, h := range s.hooks.hooks {
		if h.AfterFlags != nil {
			if err := h.AfterFlags(tx, acct, mboxID, old, updated); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) runAccountDeletedHooks(tx *Tx, acct string) error {
	s.hooks.mu.RLock()
	defer s.hooks.mu.RUnlock()
	for _, h := range s.hooks.hooks {
		if h.AccountDeleted != nil {
			if err := h.AccountDeleted(tx, acct); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) runBeforeAccountDeletedHooks(acct string) error {
	s.hooks.mu.RLock()
	hooks := slices.Clone(s.hooks.hooks)
	s.hooks.mu.RUnlock()
	for _, h := range hooks {
		if h.BeforeAccountDeleted != nil {
			if err := h.BeforeAccountDeleted(acct); err != nil {
				return err
			}
		}
	}
	return nil
}
