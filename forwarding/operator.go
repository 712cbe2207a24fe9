package forwarding

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"certmail/certified"
	"certmail/mailbox"
	"certmail/notifier"
)

// fireAlert tells the operators about a message unread for AlertAfter,
// once: the timer goes in the transaction that queues the alert
// (mailbox.Store.FireTimer).
func (s *Service) fireAlert(tx *mailbox.Tx, id string) error {
	acct, mboxID, uid, err := parseTimerID(id)
	if err != nil {
		s.log.Warn("dropping an alert timer of a bad ID", "id", id, "err", err)
		return nil
	}
	m, err := tx.Message(acct, mboxID, uid)
	if errors.Is(err, mailbox.ErrNoMessage) {
		return nil
	}
	if err != nil {
		return err
	}
	_, stub, err := certified.StubLabel(tx, m.Blob)
	if err != nil {
		return err
	}
	if m.HasFlag(mailbox.FlagSeen) && !stub {
		return nil
	}
	mb, err := tx.MailboxByID(acct, mboxID)
	if err != nil {
		return nil
	}
	if s.opts.Notices == nil {
		return nil
	}
	age := s.now().Sub(m.InternalDate).Round(time.Second)
	text := fmt.Sprintf("Message UID %d in %s/%s has been unread for %s (since %s).\n\nSee `certmail unread` and `certmail show %s --uid %d --mailbox %s`.\n",
		m.UID, acct, mb.Name, age, m.InternalDate.Format(time.RFC3339), acct, m.UID, mb.Name)
	if len(s.opts.AlertTo) > 0 {
		if err := s.opts.Notices.Enqueue(tx, notifier.Notice{
			ID: "fw-alert-" + acct + "-" + fmt.Sprint(mboxID) + "-" + fmt.Sprint(uid), To: s.opts.AlertTo, From: s.opts.Postmaster,
			Subject: fmt.Sprintf("Unread for %s: %s/%s UID %d", age, acct, mb.Name, m.UID), Text: text,
		}); err != nil {
			return err
		}
	}
	for i, url := range s.opts.Webhooks {
		payload := fmt.Sprintf(`{"event":"unread-alert","account":%q,"mailbox":%q,"uid":%d,"unread_seconds":%d}`, acct, mb.Name, m.UID, int64(age.Seconds()))
		if err := s.opts.Notices.Enqueue(tx, notifier.Notice{
			ID:   fmt.Sprintf("fw-alert-%s-%d-%d-w%d", acct, mboxID, uid, i),
			Kind: notifier.KindWebhook, URL: url, Payload: []byte(payload),
		}); err != nil {
			return err
		}
	}
	tx.OnCommit(func() { s.log.Warn("unread alert", "account", acct, "mailbox", mb.Name, "uid", m.UID, "age", age) })
	return nil
}

// OperatorForward forwards a message by hand, whether read or not, and
// records who did it.
func (s *Service) OperatorForward(acct, mbName string, uid uint32, to []string, actor string) error {
	acct, err := mailbox.NormalizeAccount(acct)
	if err != nil {
		return err
	}
	if mbName == "" {
		mbName = "INBOX"
	}
	if err := s.store.Update(func(tx *mailbox.Tx) error {
		mb, err := tx.Mailbox(acct, mbName)
		if err != nil {
			return err
		}
		m, err := tx.Message(acct, mb.ID, uid)
		if err != nil {
			return err
		}
		if err := s.forward(tx, acct, mb, m, to, "operator "+actor, false, true); err != nil {
			return err
		}
		return s.recordMessageAccess(tx, m.Blob, actor, fmt.Sprintf("operator forwarded the message of %s to %s", acct, strings.Join(to, ", ")))
	}); err != nil {
		return err
	}
	return s.store.Sync()
}

// OperatorShow returns a message's bytes for an operator and records the
// view: an audit record, and for a certified stub an OperatorView record
// in the item's evidence.
func (s *Service) OperatorShow(acct, mbName string, uid uint32, actor string) ([]byte, error) {
	acct, err := mailbox.NormalizeAccount(acct)
	if err != nil {
		return nil, err
	}
	if mbName == "" {
		mbName = "INBOX"
	}
	var raw []byte
	err = s.store.Update(func(tx *mailbox.Tx) error {
		mb, err := tx.Mailbox(acct, mbName)
		if err != nil {
			return err
		}
		m, err := tx.Message(acct, mb.ID, uid)
		if err != nil {
			return err
		}
		if raw, err = tx.BlobBytes(m.Blob); err != nil {
			return err
		}
		if label, stub, err := certified.StubLabel(tx, m.Blob); err != nil {
			return err
		} else if stub && s.opts.Certified != nil {
			if err := s.opts.Certified.OperatorView(tx, label, actor, "operator viewed the stub of "+acct); err != nil {
				return err
			}
		} else if err := s.recordMessageAccess(tx, m.Blob, actor, "operator viewed the message of "+acct); err != nil {
			return err
		}
		return s.audit(tx, Forward{Time: s.now(), Account: acct, Mailbox: mb.Name, UID: uid, Actor: "view by operator " + actor})
	})
	return raw, err
}

// recordMessageAccess records an operator's access to a certified item's
// released message M (blob) in the item's evidence, as an OperatorView
// with reason: whoever reads the evidence sees that the operator read or
// passed on the content. A message that is no item's M records nothing
// here (the audit record has it).
func (s *Service) recordMessageAccess(tx *mailbox.Tx, blob uint64, actor, reason string) error {
	if s.opts.Certified == nil {
		return nil
	}
	label, ok, err := certified.MessageLabel(tx, blob)
	if err != nil || !ok {
		return err
	}
	if err := s.opts.Certified.OperatorView(tx, label, actor, reason); !errors.Is(err, certified.ErrNoItem) {
		return err // the item may be gone with its account, M staying with an alternate
	}
	return nil
}
