package forwarding

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"certmail/certified"
	"certmail/config"
	"certmail/mailbox"
)

// MailboxUnread is the unread state of one mailbox.
type MailboxUnread struct {
	Account      string        `json:"account"`
	Mailbox      string        `json:"mailbox"`
	Messages     int           `json:"messages"`
	Unread       int           `json:"unread"`
	OldestUnread time.Time     `json:"oldest_unread,omitzero"`
	OldestAge    time.Duration `json:"-"`
}

// MarshalJSON writes OldestAge as a duration string ("oldest_age": "2d3h"),
// not nanoseconds.
func (m MailboxUnread) MarshalJSON() ([]byte, error) {
	type plain MailboxUnread
	v := struct {
		plain
		OldestAge config.Duration `json:"oldest_age,omitempty"`
	}{plain: plain(m), OldestAge: config.Duration(m.OldestAge)}
	return json.Marshal(v)
}

// UnmarshalJSON reads what MarshalJSON writes (the admin socket carries
// the report to the CLI).
func (m *MailboxUnread) UnmarshalJSON(b []byte) error {
	type plain MailboxUnread
	var v struct {
		plain
		OldestAge config.Duration `json:"oldest_age,omitempty"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = MailboxUnread(v.plain)
	m.OldestAge = time.Duration(v.OldestAge)
	return nil
}

// CertifiedState counts certified items.
type CertifiedState struct {
	Held         int              `json:"held"`
	Acknowledged int              `json:"acknowledged"`
	Refused      int              `json:"refused"`
	Expired      int              `json:"expired"`
	NearDeadline []certified.Item `json:"near_deadline,omitempty"`
}

// Report is what `certmail unread` shows.
type Report struct {
	Time      time.Time       `json:"time"`
	Mailboxes []MailboxUnread `json:"mailboxes"`
	Certified CertifiedState  `json:"certified"`
	Forwards  uint64          `json:"forwards"`
}

// NearDeadline is how close to its deadline a held item is reported.
const NearDeadline = 24 * time.Hour

// Unread reports, per account and mailbox, how many messages are unread
// and the oldest, keeping mailboxes whose oldest unread message is older
// than olderThan (all with unread mail when zero), plus certified items by
// state and those near their deadline. A certified stub counts as unread
// until its item is settled, whatever its \Seen flag.
func (s *Service) Unread(olderThan time.Duration) (*Report, error) {
	now := s.now()
	rep := &Report{Time: now}
	accounts, err := s.store.ListAccounts()
	if err != nil {
		return nil, err
	}
	for _, acct := range accounts {
		boxes, err := s.store.ListMailboxes(acct)
		if err != nil {
			return nil, err
		}
		for _, mb := range boxes {
			msgs, err := s.store.Messages(acct, mb.ID)
			if err != nil {
				return nil, err
			}
			mu := MailboxUnread{Account: acct, Mailbox: mb.Name, Messages: len(msgs)}
			for _, m := range msgs {
				if m.HasFlag(mailbox.FlagSeen) && !s.isPendingStub(m) {
					continue
				}
				mu.Unread++
				if mu.OldestUnread.IsZero() || m.InternalDate.Before(mu.OldestUnread) {
					mu.OldestUnread = m.InternalDate
				}
			}
			if mu.Unread == 0 {
				continue
			}
			mu.OldestAge = now.Sub(mu.OldestUnread)
			if olderThan > 0 && mu.OldestAge < olderThan {
				continue
			}
			rep.Mailboxes = append(rep.Mailboxes, mu)
		}
	}
	slices.SortFunc(rep.Mailboxes, func(a, b MailboxUnread) int {
		return strings.Compare(a.Account+"/"+a.Mailbox, b.Account+"/"+b.Mailbox)
	})
	err = s.store.View(func(tx *mailbox.Tx) error {
		return certified.ListItems(tx, func(it *certified.Item) error {
			switch it.State {
			case certified.StateNotified, certified.StateForwarded:
				rep.Certified.Held++
				if it.Deadline.Sub(now) < NearDeadline {
					rep.Certified.NearDeadline = append(rep.Certified.NearDeadline, *it)
				}
			case certified.StateReleased, certified.StateDeemed:
				rep.Certified.Acknowledged++
			case certified.StateRefused:
				rep.Certified.Refused++
			case certified.StateExpired:
				rep.Certified.Expired++
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	rep.Forwards, err = s.Forwards()
	return rep, err
}

func (s *Service) isPendingStub(m *mailbox.Message) bool {
	var pending bool
	s.store.View(func(tx *mailbox.Tx) error {
		label, ok, err := certified.StubLabel(tx, m.Blob)
		if err != nil || !ok {
			return err
		}
		it, err := certified.GetItem(tx, label)
		if err == nil {
			pending = it.Pending()
		}
		return nil
	})
	return pending
}
