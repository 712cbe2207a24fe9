package certified

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"certmail/kv"
	"certmail/mailbox"
	"certmail/receipts/evidence"

	"certmail/kv/keyspace"
)

// A deleted account's public keys move out of its name's key space, to
//
//	cm/pubkey-deleted/<acct>/<kid>   KeyRecord, retired
//
// so that an account created later under the same name neither signs with
// them nor lists them, while the evidence bundles of the old account's
// items still carry them (its CODs must go on verifying).
func deletedKeyPrefix(acct string) []byte {
	return []byte(keyspace.Certified + "pubkey-deleted/" + acct + "/")
}

// accountDeleted runs in the transaction that deletes acct (a store
// hook): everything the account held in certified mail ends with it.
//
//   - Its pending items expire now as non-delivery: the evidence records a
//     ContentConsignmentFailure saying why, every stub (an alternate's too)
//     is withdrawn, M is dropped, the timers are cancelled, and the sender
//     is told. Deemed delivery does not apply: there is nobody to deliver
//     to, and a later account of the name is somebody else.
//   - Where it was an alternate, it stops being a holder (its stub goes)
//     and an originator alternate naming it is dropped, so that nobody
//     created later under the name can sign for the item.
//   - Its custody key is destroyed and its public keys are retired and
//     moved aside (deletedKeyPrefix).
func (s *Service) accountDeleted(tx *mailbox.Tx, acct string) error {
	if _, err := s.endItemsOf(tx, acct, 0); err != nil {
		return err
	}
	return retireAccountKeys(tx, acct)
}

// deleteBatch is how many items accountDeleting ends per transaction: a
// few hundred kilobytes of evidence and notices, well inside what one
// Badger transaction takes (thousands of items in one did not fit).
const deleteBatch = 100

// accountDeleting ends acct's pending items before the transaction that
// deletes the account (a store hook), deleteBatch per transaction, so that
// the deletion works however many there are. Each is a complete
// transition of its own (evidence, notice); those that arrive meanwhile
// are ended in the deletion's transaction by accountDeleted.
func (s *Service) accountDeleting(acct string) error {
	for {
		var n int
		if err := s.store.Update(func(tx *mailbox.Tx) error {
			var err error
			n, err = s.endItemsOf(tx, acct, deleteBatch)
			return err
		}); err != nil {
			return err
		}
		if n < deleteBatch {
			return nil
		}
	}
}

// endItemsOf ends up to limit (0: all) of the pending items acct is the
// recipient or an alternate of, and says how many it ended.
func (s *Service) endItemsOf(tx *mailbox.Tx, acct string, limit int) (int, error) {
	var pending []*Item
	if err := ListItems(tx, func(it *Item) error {
		if limit > 0 && len(pending) >= limit {
			return nil
		}
		if it.Pending() && (it.Recipient == acct || it.IsHolder(acct) || s.namesAccount(it.Alternates, acct)) {
			pending = append(pending, it)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("finding the certified items of %s: %w", acct, err)
	}
	for _, it := range pending {
		var err error
		if it.Recipient == acct {
			err = s.recipientGone(tx, it)
		} else {
			err = s.alternateGone(tx, it, acct)
		}
		if err != nil {
			return 0, err
		}
	}
	return len(pending), nil
}

// namesAccount reports whether any of addrs is acct's address.
func (s *Service) namesAccount(addrs []string, acct string) bool {
	return slices.ContainsFunc(addrs, func(a string) bool {
		r, err := s.opts.Addresses.Route(a)
		return err == nil && r.Account == acct
	})
}

// recipientGone settles an item whose recipient's account is deleted:
// non-delivery, recorded and reported as a deadline would be.
func (s *Service) recipientGone(tx *mailbox.Tx, it *Item) error {
	now := s.now()
	rec, err := s.log.Append(tx, evidence.NewContentConsignmentFailure(it.Label, it.HashBytes(), it.Deadline,
		fmt.Sprintf("non-delivery: the recipient's account %s was deleted on %s, before a certificate of delivery or refusal", it.Recipient, now.Format(time.RFC3339))))
	if err != nil {
		return fmt.Errorf("recording the non-delivery of %s: %w", it.Label, err)
	}
	if err := s.withdrawStubs(tx, it); err != nil {
		return err
	}
	if err := s.finish(tx, it); err != nil {
		return err
	}
	it.State, it.Decided = StateExpired, now
	if err := putItem(tx, it); err != nil {
		return err
	}
	s.notifySender(tx, it, "account-deleted", "Certified item "+it.Label+": not delivered",
		fmt.Sprintf("Certified item %s for %s was not delivered: the recipient's account was deleted at %s, before a certificate of delivery or refusal.\nThe content was not handed over to anyone; this is the report of non-delivery.\n",
			it.Label, it.Recipient, now.Format(time.RFC3339)),
		[]evidence.Entry{rec})
	// Said once the commit stands: a transaction run again after a
	// conflict with another node would say it twice.
	tx.OnCommit(func() {
		s.lg.Info("certified item not delivered: recipient account deleted", "label", it.Label, "recipient", it.Recipient)
	})
	return nil
}

// alternateGone takes a deleted account out of an item it was an
// alternate for: its stub goes, and it can no longer sign.
func (s *Service) alternateGone(tx *mailbox.Tx, it *Item, acct string) error {
	refs, err := tx.MessagesByBlob(it.StubBlob)
	if err != nil {
		return err
	}
	for _, r := range refs {
		if r.Account != acct {
			continue
		}
		if err := tx.ExpungeRef(r); err != nil {
			return fmt.Errorf("withdrawing the stub of %s from %s: %w", it.Label, acct, err)
		}
	}
	it.Holders = slices.DeleteFunc(it.Holders, func(h string) bool { return h == acct })
	it.Alternates = slices.DeleteFunc(it.Alternates, func(a string) bool { return s.namesAccount([]string{a}, acct) })
	// Said once the commit stands: a transaction run again after a
	// conflict with another node would say it twice.
	tx.OnCommit(func() { s.lg.Info("certified item: alternate account deleted", "label", it.Label, "alternate", acct) })
	return putItem(tx, it)
}

// retireAccountKeys destroys acct's custody key and moves its public keys
// aside, retired.
func retireAccountKeys(kv kv.Records, acct string) error {
	if err := kv.Delete(custodyKey(acct)); err != nil {
		return err
	}
	keys, err := Keys(kv, acct)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, k := range keys {
		if k.Retired.IsZero() {
			k.Retired = now
		}
		b, err := json.Marshal(k)
		if err != nil {
			return err
		}
		if err := kv.Set(append(deletedKeyPrefix(acct), k.KeyID...), b); err != nil {
			return err
		}
		if err := kv.Delete(pubKeyKey(acct, k.KeyID)); err != nil {
			return err
		}
	}
	return nil
}

// deletedKeys lists the keys of deleted accounts of the name acct.
func deletedKeys(kv kv.Records, acct string) ([]KeyRecord, error) {
	return scanKeyRecords(kv, deletedKeyPrefix(acct))
}
