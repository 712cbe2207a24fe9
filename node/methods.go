package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"certmail/admin"
	"certmail/authguard"
	"certmail/certified"
	"certmail/mailbox"
	"certmail/notifier"
	"certmail/receipts"
)

// adminMethods are the admin socket's extension methods: every operator
// and user command beyond accounts and delivery. Each feature adds its own
// in its add*Methods function.
func (s *Services) AdminMethods() admin.Methods {
	m := admin.Methods{}
	s.addKeyMethods(m)
	s.addOwnPasswordMethod(m)
	s.addQuotaMethods(m)    // user.quota
	s.addEvidenceMethods(m) // evidence_methods.go: token.*, evidence.bundle
	s.addItemMethods(m)
	s.addForwardMethods(m)
	s.addOpsMethods(m) // ops.go: ops.backup.*
	return m
}

// KeyRegisterParams are the params of key.register.
type KeyRegisterParams struct {
	Account string `json:"account"`
	PEM     string `json:"pem"`
}

// KeyListParams are the params of key.list.
type KeyListParams struct {
	Account string `json:"account"`
}

func (s *Services) addKeyMethods(m admin.Methods) {
	store := s.certified.Store()
	m["key.register"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p KeyRegisterParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		acct, err := mailbox.NormalizeAccount(p.Account)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", p.Account, err)
		}
		pub, err := receipts.ParsePublicKeyPEM([]byte(p.PEM))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", admin.ErrBadRequest, err)
		}
		var kid string
		err = store.Update(func(tx *mailbox.Tx) error {
			if _, err := tx.Account(acct); err != nil {
				return err
			}
			kid, err = certified.RegisterKey(tx, acct, pub)
			return err
		})
		if err != nil {
			return nil, err
		}
		return kid, store.Sync()
	}
	m["key.list"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p KeyListParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		acct, err := mailbox.NormalizeAccount(p.Account)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", p.Account, err)
		}
		var keys []certified.KeyRecord
		err = store.View(func(tx *mailbox.Tx) error {
			if _, err := tx.Account(acct); err != nil {
				return err
			}
			keys, err = certified.Keys(tx, acct)
			return err
		})
		return keys, err
	}
}

// LabelParams name one certified item.
type LabelParams struct {
	Label string `json:"label"`
}

func (s *Services) addItemMethods(m admin.Methods) {
	m["item.check"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p LabelParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		rc, err := s.certified.VerifyRelease(p.Label)
		if err != nil {
			return nil, err
		}
		return rc, nil
	}
	store := s.certified.Store()
	m["item.show"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p LabelParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		if !receipts.ValidLabel(p.Label) {
			return nil, fmt.Errorf("%w: %q is not a label (cm-...)", admin.ErrBadRequest, p.Label)
		}
		var r *certified.Report
		err := store.View(func(tx *mailbox.Tx) error {
			var err error
			r, err = certified.ItemReport(tx, p.Label)
			return err
		})
		return r, err
	}
	m["item.list"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p certified.ItemFilter
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		var items []*certified.Item
		err := store.View(func(tx *mailbox.Tx) error {
			var err error
			items, err = certified.ListFiltered(tx, p)
			return err
		})
		return items, err
	}
	m["outbox.list"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p OutboxListParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		var list []notifier.Status
		err := store.View(func(tx *mailbox.Tx) error {
			var err error
			list, err = notifier.List(tx, notifier.ListOptions{Sent: p.Sent})
			return err
		})
		return list, err
	}
	m["outbox.retry"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p OutboxRetryParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		var ids []string
		err := store.Update(func(tx *mailbox.Tx) error {
			ids = nil
			if p.AllDead {
				var err error
				ids, err = notifier.RetryDead(tx, time.Now())
				return err
			}
			for _, id := range p.IDs {
				if err := notifier.Retry(tx, id, time.Now()); err != nil {
					if errors.Is(err, notifier.ErrNotDead) {
						return fmt.Errorf("%w: %w", admin.ErrBadRequest, err)
					}
					return err
				}
				ids = append(ids, id)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if err := store.Sync(); err != nil {
			return nil, fmt.Errorf("syncing store: %w", err)
		}
		// In the server, send them now rather than at the next poll.
		s.outbox.Kick()
		return OutboxRetryResult{IDs: ids}, nil
	}
}

// OutboxListParams are the params of outbox.list.
type OutboxListParams struct {
	Sent bool `json:"sent,omitempty"`
}

// OutboxRetryParams name the dead letters outbox.retry queues again.
type OutboxRetryParams struct {
	IDs     []string `json:"ids,omitempty"`
	AllDead bool     `json:"all_dead,omitempty"`
}

// OutboxRetryResult lists the notices queued again.
type OutboxRetryResult struct {
	IDs []string `json:"ids"`
}

// OwnPasswordParams are the params of user.passwd.own.
type OwnPasswordParams struct {
	Account string `json:"account"`
	Old     string `json:"old"`
	New     string `json:"new"`
}

// addOwnPasswordMethod lets an account's owner change the password with
// the old one: the custody key is re-sealed, not replaced, so the owner
// keeps signing with the same key.
func (s *Services) addOwnPasswordMethod(m admin.Methods) {
	store := s.certified.Store()
	m["user.passwd.own"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p OwnPasswordParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		// The old password is checked through the guard, as every
		// password is: guesses here count, and a locked account stays
		// locked.
		acct, err := s.auth.Authenticate(ctx, authguard.Attempt{Proto: "admin", Name: p.Account}, p.Old)
		if err != nil {
			return nil, fmt.Errorf("the old password is wrong: %w", err)
		}
		if err := store.SetPassword(acct, p.New, func(tx *mailbox.Tx) error {
			return certified.ChangePassword(tx, acct, p.Old, p.New)
		}); err != nil {
			return nil, err
		}
		return nil, store.Sync()
	}
}

// QuotaParams are the params of user.quota: nil leaves a limit as it is,
// mailbox.QuotaDefault puts it back on the configuration's default, 0 is
// no limit.
type QuotaParams struct {
	Account  string `json:"account"`
	Storage  *int64 `json:"storage,omitempty"`
	Messages *int64 `json:"messages,omitempty"`
}

// QuotaResult is an account's usage and limits (0: no limit).
type QuotaResult struct {
	StorageUsed   int64 `json:"storage_used"`
	StorageLimit  int64 `json:"storage_limit"`
	MessagesUsed  int64 `json:"messages_used"`
	MessagesLimit int64 `json:"messages_limit"`
}

// addQuotaMethods: user.quota sets an account's limits (if given) and
// returns its usage and limits.
func (s *Services) addQuotaMethods(m admin.Methods) {
	store := s.certified.Store()
	m["user.quota"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p QuotaParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		acct, err := mailbox.NormalizeAccount(p.Account)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", p.Account, err)
		}
		if p.Storage != nil || p.Messages != nil {
			if err := store.SetQuota(acct, p.Storage, p.Messages); err != nil {
				return nil, err
			}
			if err := store.Sync(); err != nil {
				return nil, err
			}
		}
		q, err := store.Quota(acct)
		if err != nil {
			return nil, err
		}
		return QuotaResult{q.StorageUsed, q.StorageLimit, q.MessagesUsed, q.MessagesLimit}, nil
	}
}
