package certified

import (
	"errors"
	"fmt"
	"time"

	"certmail/mailbox"
	"certmail/receipts/evidence"
)

// TimerForward is the kind of the auto-forward timers of certified items.
const TimerForward = "cm-forward"

// expire settles an item whose deadline passed: non-delivery (stubs
// withdrawn, M discarded) or, by policy, deemed delivery (M released to the
// recipient). Both are recorded and the sender is told. It runs in the
// transaction that removes the item's timer (mailbox.Store.FireTimer).
func (s *Service) expire(tx *mailbox.Tx, label string) error {
	it, err := GetItem(tx, label)
	if errors.Is(err, ErrNoItem) || err == nil && !it.Pending() {
		return nil // settled meanwhile: the timer only goes
	}
	if err != nil {
		return err
	}
	// One record settles the item. Non-delivery is a
	// ContentConsignmentFailure; deemed delivery is an
	// AcceptanceRejectionExpiry whose reason says the content was
	// released by policy.
	var ev evidence.Event
	if it.OnExpiry == OnExpiryDeemedDelivery {
		// M is released, and r with it.
		ev = evidence.NewAcceptanceRejectionExpiry(it.Label, it.HashBytes(), it.Deadline,
			"deemed delivery: no certificate of delivery or refusal before the deadline; content released to the recipient by policy", it.Salt)
	} else {
		ev = evidence.NewContentConsignmentFailure(it.Label, it.HashBytes(), it.Deadline,
			"non-delivery: no certificate of delivery or refusal before the deadline")
	}
	rec, err := s.log.Append(tx, ev)
	if err != nil {
		return err
	}
	if err := s.withdrawStubs(tx, it); err != nil {
		return err
	}
	var text string
	if it.OnExpiry == OnExpiryDeemedDelivery {
		// Counted while held: not checked again.
		if _, err := tx.AppendBlob(it.Recipient, "INBOX", it.Blob, mailbox.AppendOptions{QuotaExempt: true}); err != nil {
			return fmt.Errorf("releasing %s on deemed delivery: %w", it.Label, err)
		}
		it.State = StateDeemed
		text = "By the item's policy it is deemed delivered: the content was placed in the recipient's mailbox without a certificate of delivery."
	} else {
		it.State = StateExpired
		text = "The content was not handed over; this is the report of non-delivery."
	}
	if err := s.finish(tx, it); err != nil {
		return err
	}
	it.Decided = s.now()
	if err := putItem(tx, it); err != nil {
		return err
	}
	s.notifySender(tx, it, "expired", "Certified item "+it.Label+": deadline passed",
		fmt.Sprintf("The deadline %s of certified item %s for %s passed with no certificate of delivery and no refusal.\n%s\n",
			it.Deadline.Format(time.RFC3339), it.Label, it.Recipient, text),
		[]evidence.Entry{rec})
	// Said once the commit stands: a transaction run again after a
	// conflict with another node would say it twice.
	tx.OnCommit(func() { s.lg.Info("certified item expired", "label", it.Label, "state", it.State) })
	return nil
}
