package certified

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"certmail/mailbox"
	"certmail/notifier"
	"certmail/receipts"
	"certmail/receipts/evidence"

	"certmail/kv"

	"certmail/kv/keyspace"
)

// stubKey indexes items by the blob of their stub, so that whoever finds a
// stub in a mailbox (auto-forward, an operator) can tell which item it is.
func stubKey(blob uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(keyspace.Certified+"stub/"), blob)
}

// messageKey indexes items by the blob of their message M, so that an
// operator's view or forward of M once released lands in the item's
// evidence. Items submitted before it have none.
func messageKey(blob uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("cm/msg/"), blob)
}

// MessageLabel returns the label of the item whose message M is blob, if
// any.
func MessageLabel(kv kv.Records, blob uint64) (string, bool, error) {
	v, ok, err := kv.Get(messageKey(blob))
	return string(v), ok, err
}

// StubLabel returns the label of the item whose stub is blob, if any.
func StubLabel(kv kv.Records, blob uint64) (string, bool, error) {
	v, ok, err := kv.Get(stubKey(blob))
	return string(v), ok, err
}

// ForwardStub passes an item's stub from holder to alternates inside tx,
// each resolved by the addressing rule. A local account gets the stub in
// its INBOX and may sign instead of the recipient; an external address
// (another domain's account, however its local part reads) is sent a stub
// of its own through the notice outbox, and is named in full in the
// evidence. The evidence gets a Forwarded record per alternate (with
// actor, the policy or operator that acted), and a ConsignmentNotification
// per local one. Alternates that already have the stub are skipped. It
// returns who got it: account names and external addresses.
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
		a, err := s.opts.Addresses.Resolve(tx, alt)
		if err != nil {
			s.lg.Info("certified stub not forwarded", "label", label, "alternate", alt, "reason", err)
			continue
		}
		if a.Local() && it.IsHolder(a.Account) || !a.Local() && slices.Contains(it.External, a.Addr) {
			continue
		}
		if !a.Local() && s.opts.Notices == nil {
			s.lg.Warn("certified stub not forwarded: no outbox to send it to an external alternate", "label", label, "alternate", a.Addr)
			continue
		}
		to := a.Account
		if !a.Local() {
			to = a.Addr
		}
		ev := evidence.NewForwarded(label, it.HashBytes(), holder, to, actor, reason)
		if operator {
			ev = evidence.NewOperatorForward(label, it.HashBytes(), actor, to, reason)
		}
		rec, err := s.log.Append(tx, ev)
		if err != nil {
			return nil, fmt.Errorf("recording the forward of %s: %w", label, err)
		}
		records = append(records, rec)
		if a.Local() {
			note, err := s.deliverStub(tx, it, a.Account)
			if err != nil {
				return nil, err
			}
			records = append(records, note)
			it.Holders = append(it.Holders, a.Account)
		} else {
			if err := s.sendStub(tx, it, a.Addr); err != nil {
				return nil, err
			}
			it.External = append(it.External, a.Addr)
		}
		done = append(done, to)
	}
	if len(done) == 0 {
		return nil, nil
	}
	it.State = StateForwarded
	if err := putItem(tx, it); err != nil {
		return nil, err
	}
	s.notifySender(tx, it, "forwarded-"+idPart(strings.Join(done, " ")), "Certified item "+label+" forwarded",
		fmt.Sprintf("Certified item %s was not acknowledged by %s in time and was forwarded to %s (%s). Any of them with an account here may now acknowledge it.\n",
			label, holder, strings.Join(done, ", "), actor), records)
	// Said once the commit stands: a transaction run again after a
	// conflict with another node would say it twice.
	tx.OnCommit(func() {
		s.lg.Info("certified stub forwarded", "label", label, "from", holder, "to", done, "actor", actor)
	})
	return done, nil
}

// sendStub queues a stub of it, addressed to an external alternate, in
// the notice outbox (inside tx, so it goes only if the forward commits).
// It is built like the recipient's, from the same StubInfo fields, so it
// shows nothing of M that the recipient's does not; its COD request names
// the alternate, who has no account here to sign with.
func (s *Service) sendStub(tx *mailbox.Tx, it *Item, addr string) error {
	hash := it.HashBytes()
	stub, err := notifier.BuildStub(notifier.StubInfo{
		Postmaster: s.opts.Postmaster,
		Gateway:    s.opts.Gateway,
		Label:      it.Label,
		Hash:       hash,
		Recipient:  addr,
		Deadline:   it.Deadline,
		From:       it.From,
		Subject:    it.Subject,
		Request:    receipts.NewCODRequest(s.opts.Gateway, it.Label, hash, addr, it.Deadline),
	}, s.now())
	if err != nil {
		return fmt.Errorf("building the stub of %s for %s: %w", it.Label, addr, err)
	}
	n := notifier.Notice{ID: "cm-stub-" + it.Label + "-" + idPart(addr), Ref: it.Label, To: []string{addr}, From: s.opts.Postmaster, Raw: stub}
	if err := s.opts.Notices.Enqueue(tx, n); err != nil {
		return fmt.Errorf("queueing the stub of %s for %s: %w", it.Label, addr, err)
	}
	return nil
}

// idPart makes s usable in a notice ID (which allows only letters, digits
// and ._-+=): a short digest, the same for the same s.
func idPart(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// forwardToAlternates fires the sender's alternates timer, in the
// transaction that removes it (mailbox.Store.FireTimer).
func (s *Service) forwardToAlternates(tx *mailbox.Tx, label string) error {
	it, err := GetItem(tx, label)
	if errors.Is(err, ErrNoItem) {
		return nil
	}
	if err != nil || !it.Pending() {
		return err
	}
	_, err = s.ForwardStub(tx, label, it.Recipient, it.Alternates, "originator", "no answer halfway to the deadline", false)
	return err
}

// OperatorView records that an operator looked at an item: its stub
// while held, or its message once released (an OperatorView may follow a
// final state; an OperatorForward may not, so a forward of the released
// message is recorded as a view with the forward as its reason).
func (s *Service) OperatorView(tx *mailbox.Tx, label, actor, reason string) error {
	it, err := GetItem(tx, label)
	if err != nil {
		return err
	}
	_, err = s.log.Append(tx, evidence.NewOperatorView(label, it.HashBytes(), actor, reason))
	return err
}
