package mailbox

import (
	"encoding/binary"
	"errors"
	"fmt"

	"certmail/kv/keyspace"
)

// Quotas (RFC 9208's STORAGE and MESSAGE resources): what an account's
// messages take, kept as one counter per account that every change of a
// message updates in its own transaction (insert, removeMessage,
// dropMailbox), so that reading it costs one key and it is never out of
// step with the messages. Other packages add what they hold for an
// account outside its mailboxes (a certified item's M) with AdjustUsage.
//
//	usage/<acct>     bytes:uvarint messages:uvarint

const prefixUsage = keyspace.Usage

func usageKey(acct string) []byte { return []byte(prefixUsage + acct) }

// ErrOverQuota: the change would take an account past its storage or
// message limit.
var ErrOverQuota = errors.New("over quota")

// Quota is an account's usage and limits. A limit of 0 is no limit.
type Quota struct {
	StorageUsed, StorageLimit   int64 // bytes
	MessagesUsed, MessagesLimit int64
}

// QuotaDefault, as a limit given to SetQuota, puts the account back on
// the store's default (Options.QuotaStorage, Options.QuotaMessages).
const QuotaDefault int64 = -1

type usage struct{ bytes, messages int64 }

func encodeUsage(u usage) []byte {
	b := binary.AppendUvarint(nil, uint64(max(u.bytes, 0)))
	return binary.AppendUvarint(b, uint64(max(u.messages, 0)))
}

func decodeUsage(b []byte) (usage, error) {
	bytes, n := binary.Uvarint(b)
	if n <= 0 {
		return usage{}, fmt.Errorf("decoding usage: %w", errBadRecord)
	}
	msgs, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return usage{}, fmt.Errorf("decoding usage: %w", errBadRecord)
	}
	return usage{int64(bytes), int64(msgs)}, nil
}

// usage reads an account's counter. A store written before counters were
// kept has none: it is counted from the account's mailboxes once, in this
// transaction, and kept from then on.
func (tx *Tx) usage(acct string) (usage, error) {
	b, ok, err := tx.get(usageKey(acct))
	if err != nil {
		return usage{}, err
	}
	if ok {
		return decodeUsage(b)
	}
	var u usage
	boxes, err := tx.ListMailboxes(acct)
	if err != nil {
		return usage{}, err
	}
	for _, mb := range boxes {
		bytes, n, err := tx.boxTotals(acct, mb.ID)
		if err != nil {
			return usage{}, err
		}
		u.bytes += bytes
		u.messages += n
	}
	return u, nil
}

// boxTotals sums the sizes of a mailbox's messages.
func (tx *Tx) boxTotals(acct string, id uint32) (bytes, n int64, err error) {
	err = tx.scan(messagePrefix(acct, id), false, func(_, v []byte) error {
		var m Message
		if err := decodeMessage(v, &m); err != nil {
			return err
		}
		bytes += m.Size
		n++
		return nil
	})
	return bytes, n, err
}

// addUsage changes an account's counter. It is a no-op for an account
// that no longer exists (the batches that remove a deleted account's
// messages after its deletion).
func (tx *Tx) addUsage(acct string, bytes, messages int64) error {
	if ok, err := tx.has(accountKey(acct)); err != nil || !ok {
		return err
	}
	u, err := tx.usage(acct)
	if err != nil {
		return err
	}
	u.bytes += bytes
	u.messages += messages
	return tx.set(usageKey(acct), encodeUsage(u))
}

// AdjustUsage counts bytes (and messages) an account holds outside its
// mailboxes against its quota, or, negative, stops counting them: a
// certified item's M, held for the recipient until the COD, counts
// against the recipient (issue 14), in the transaction that holds it.
func (tx *Tx) AdjustUsage(acct string, bytes, messages int64) error {
	return tx.addUsage(acct, bytes, messages)
}

// Quota returns an account's usage and limits.
func (tx *Tx) Quota(acct string) (Quota, error) {
	a, err := tx.Account(acct)
	if err != nil {
		return Quota{}, err
	}
	u, err := tx.usage(acct)
	if err != nil {
		return Quota{}, err
	}
	q := Quota{StorageUsed: u.bytes, MessagesUsed: u.messages,
		StorageLimit: tx.s.quotaStorage, MessagesLimit: tx.s.quotaMessages}
	if a.QuotaStorage != nil {
		q.StorageLimit = *a.QuotaStorage
	}
	if a.QuotaMessages != nil {
		q.MessagesLimit = *a.QuotaMessages
	}
	return q, nil
}

// Quota returns an account's usage and limits.
func (s *Store) Quota(acct string) (Quota, error) {
	var q Quota
	err := s.View(func(tx *Tx) error {
		var err error
		q, err = tx.Quota(acct)
		return err
	})
	return q, err
}

// CheckQuota returns ErrOverQuota (wrapped, saying which limit) if adding
// bytes and messages would take the account past a limit. An account
// already past one (its limit was lowered) may still remove messages and
// move them between its mailboxes; it may not add.
func (tx *Tx) CheckQuota(acct string, bytes, messages int64) error {
	q, err := tx.Quota(acct)
	if err != nil {
		return err
	}
	return q.check(acct, bytes, messages)
}

func (q Quota) check(acct string, bytes, messages int64) error {
	if q.StorageLimit > 0 && bytes > 0 && q.StorageUsed+bytes > q.StorageLimit {
		return fmt.Errorf("account %s: %w: storage %d of %d bytes used, %d more asked", acct, ErrOverQuota, q.StorageUsed, q.StorageLimit, bytes)
	}
	if q.MessagesLimit > 0 && messages > 0 && q.MessagesUsed+messages > q.MessagesLimit {
		return fmt.Errorf("account %s: %w: %d of %d messages", acct, ErrOverQuota, q.MessagesUsed, q.MessagesLimit)
	}
	return nil
}

// SetQuota sets an account's limits: nil leaves a limit as it is,
// QuotaDefault puts it back on the store's default, 0 is no limit, and a
// positive value is the limit (bytes, messages).
func (s *Store) SetQuota(name string, storage, messages *int64) error {
	acct, err := NormalizeAccount(name)
	if err != nil {
		return fmt.Errorf("account %q: %w", name, err)
	}
	set := func(dst **int64, v *int64) error {
		switch {
		case v == nil:
		case *v == QuotaDefault:
			*dst = nil
		case *v < 0:
			return fmt.Errorf("quota of %s: negative limit %d", acct, *v)
		default:
			*dst = new(*v)
		}
		return nil
	}
	return s.Update(func(tx *Tx) error {
		a, err := tx.Account(acct)
		if err != nil {
			return err
		}
		if err := set(&a.QuotaStorage, storage); err != nil {
			return err
		}
		if err := set(&a.QuotaMessages, messages); err != nil {
			return err
		}
		return tx.setJSON(accountKey(acct), a)
	})
}
