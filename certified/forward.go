package certified

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

// stubKey indexes items by the blob of their stub, so that whoever finds a
// stub in a mailbox (auto-forward, an operator) can tell which item it is.
func stubKey(blob uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("cm/stub/"), blob)
}

// StubLabel returns the label of the item whose stub is blob, if any.
func StubLabel(kv receipts.KV, blob uint64) (string, bool, error) {
	v, ok, err := kv.Get(stubKey(blob))
	return string(v), ok, err
}

// ForwardStub passes an item's stub from holder to alternates (local
// accounts) inside tx: each gets the stub in INBOX and may sign instead of
// the recipient. The evidence gets a Forwarded record per alternate (with
// actor, the policy or operator that acted) and the notification. Accounts
// that already hold the stub are skipped. It returns who got it.
func (s *Service) ForwardStub(tx *mailbox.Tx, label, holder string, alternates []string, actor, reason string, operator bool) ([]string, error) {
	it, err := GetItem(tx, label)
	if err != nil {
		return nil, err
	}
	if !it.Pending() {
		return nil, nil
	}
	var done []string
	var records []evidence.Entry
	for _, alt := range alternates {
		acct, err := mailbox.NormalizeAccount(strings.SplitN(alt, "@", 2)[0])
		if err != nil || it.IsHolder(acct) {
			continue
		}
		if _, err := tx.Account(acct); err != nil {
			s.lg.Info("certified stub not forwarded: no such local account", "label", label, "alternate", alt)
			continue
		}
		ev := evidence.NewForwarded(label, it.HashBytes(), holder, acct, actor, reason)
		if operator {
			ev = evidence.NewOperatorForward(label, it.HashBytes(), actor, acct, reason)
		}
		rec, err := s.log.Append(tx, ev)
		if err != nil {
			return nil, fmt.Errorf("recording the forward of %s: %w", label, err)
		}
		note, err := s.deliverStub(tx, it, acct)
		if err != nil {
			return nil, err
		}
		records = append(records, rec, note)
		it.Holders = append(it.Holders, acct)
		done = append(done, acct)
	}
	if len(done) == 0 {
		return nil, nil
	}
	it.State = StateForwarded
	if err := putItem(tx, it); err != nil {
		return nil, err
	}
	s.notifySender(tx, it, "forwarded-"+strings.Join(done, "-"), "Certified item "+label+" forwarded",
		fmt.Sprintf("Certified item %s was not acknowledged by %s in time and was forwarded to %s (%s). Any of them may now acknowledge it.\n",
			label, holder, strings.Join(done, ", "), actor), records)
	s.lg.Info("certified stub forwarded", "label", label, "from", holder, "to", done, "actor", actor)
	return done, nil
}

// forwardToAlternates fires the sender's alternates timer.
func (s *Service) forwardToAlternates(label string) error {
	return s.store.Update(func(tx *mailbox.Tx) error {
		if err := tx.CancelTimer(TimerForward, label); err != nil {
			return err
		}
		it, err := GetItem(tx, label)
		if errors.Is(err, ErrNoItem) {
			return nil
		}
		if err != nil || !it.Pending() {
			return err
		}
		_, err = s.ForwardStub(tx, label, it.Recipient, it.Alternates, "originator", "no answer halfway to the deadline", false)
		return err
	})
}

// OperatorView records that an operator looked at a held item.
func (s *Service) OperatorView(tx *mailbox.Tx, label, actor, reason string) error {
	it, err := GetItem(tx, label)
	if err != nil {
		return err
	}
	_, err = s.log.Append(tx, evidence.NewOperatorView(label, it.HashBytes(), actor, reason))
	return err
}
