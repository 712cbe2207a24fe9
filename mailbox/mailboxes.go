package mailbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"certmail/kv"
)

// Delimiter separates levels of the mailbox hierarchy.
const Delimiter = '/'

// MaxMailboxes bounds how many mailboxes one account may have: the
// default and the ceiling of Options.MaxMailboxes.
const MaxMailboxes = 1000

// NormalizeMailbox validates a mailbox name and spells INBOX canonically.
func NormalizeMailbox(name string) (string, error) {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	if before, after, ok := strings.Cut(name, "/"); ok && strings.EqualFold(before, "INBOX") {
		name = "INBOX/" + after
	}
	switch {
	case name == "", len(name) > 255:
		return "", fmt.Errorf("mailbox name %q: %w: empty or longer than 255 bytes", name, ErrBadName)
	case strings.HasPrefix(name, "/"), strings.HasSuffix(name, "/"), strings.Contains(name, "//"):
		return "", fmt.Errorf("mailbox name %q: %w: empty hierarchy level", name, ErrBadName)
	case strings.ContainsAny(name, "*%"):
		return "", fmt.Errorf("mailbox name %q: %w: contains a wildcard", name, ErrBadName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("mailbox name %q: %w: contains a control character", name, ErrBadName)
		}
	}
	return name, nil
}

func mailboxIDKey(acct string, id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(prefixMailboxID+acct+"\x00"), id)
}

// Mailbox returns a mailbox's record by name.
func (tx *Tx) Mailbox(acct, name string) (*MailboxInfo, error) {
	n, err := NormalizeMailbox(name)
	if err != nil {
		return nil, err
	}
	var mb MailboxInfo
	ok, err := tx.getJSON(mailboxKey(acct, n), &mb)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("mailbox %q: %w", name, ErrNoMailbox)
	}
	return &mb, nil
}

// MailboxByID returns a mailbox's record by ID (IDs survive renames).
func (tx *Tx) MailboxByID(acct string, id uint32) (*MailboxInfo, error) {
	name, found, err := tx.get(mailboxIDKey(acct, id))
	if err != nil {
		return nil, fmt.Errorf("mailbox %d: %w", id, err)
	}
	if !found {
		return nil, fmt.Errorf("mailbox %d: %w", id, ErrNoMailbox)
	}
	return tx.Mailbox(acct, string(name))
}

func (tx *Tx) putMailbox(acct string, mb *MailboxInfo) error {
	tx.recordChanged(acct, mb.ID)
	if err := tx.setJSON(mailboxKey(acct, mb.Name), mb); err != nil {
		return err
	}
	return tx.set(mailboxIDKey(acct, mb.ID), []byte(mb.Name))
}

// ListMailboxes returns an account's mailboxes sorted by name.
func (tx *Tx) ListMailboxes(acct string) ([]*MailboxInfo, error) {
	var out []*MailboxInfo
	err := tx.scan(mailboxPrefix(acct), false, func(_, v []byte) error {
		var mb MailboxInfo
		if err := jsonUnmarshal(v, &mb); err != nil {
			return err
		}
		out = append(out, &mb)
		return nil
	})
	return out, err
}

// CreateMailbox creates a mailbox.
func (tx *Tx) CreateMailbox(acct string, nm NewMailbox) (*MailboxInfo, error) {
	name, err := NormalizeMailbox(nm.Name)
	if err != nil {
		return nil, err
	}
	a, err := tx.Account(acct)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Mailbox(acct, name); err == nil {
		return nil, fmt.Errorf("mailbox %q: %w", name, ErrMailboxExists)
	}
	// The configured limit (Options.MaxMailboxes); IDs only grow, so
	// below the limit no count is needed.
	if limit := tx.s.maxMailboxes; a.NextMailboxID >= uint32(limit) {
		boxes, err := tx.ListMailboxes(acct)
		if err != nil {
			return nil, err
		}
		if len(boxes) >= limit {
			tx.s.log.Warn("mailbox limit reached", "account", acct, "mailbox", name, "limit", limit)
			return nil, fmt.Errorf("mailbox %q: %w (limit %d)", name, ErrTooManyMailboxes, limit)
		}
	}
	// UIDVALIDITY comes from a store-wide counter seeded with the clock,
	// so a mailbox deleted and created again never reuses one.
	uv, err := tx.nextCounter("uidvalidity", uint64(time.Now().Unix()))
	if err != nil {
		return nil, err
	}
	// An ID under which records are left (a mailbox whose deletion
	// stopped before its messages were removed, which any node's next
	// start collects) is skipped: a new mailbox must not show another's
	// messages, whether or not they have been collected yet.
	for {
		a.NextMailboxID++
		left, err := tx.mailboxLeftovers(acct, a.NextMailboxID)
		if err != nil {
			return nil, err
		}
		if !left {
			break
		}
		tx.s.log.Warn("mailbox ID skipped: messages of a deleted mailbox are still under it", "account", acct, "mailbox_id", a.NextMailboxID)
	}
	mb := &MailboxInfo{
		ID:          a.NextMailboxID,
		Name:        name,
		UIDValidity: uint32(uv),
		UIDNext:     1,
		SpecialUse:  nm.SpecialUse,
		Subscribed:  nm.Subscribed,
		Created:     now(),
	}
	if err := tx.adoptSubscription(acct, mb); err != nil {
		return nil, err
	}
	if err := tx.setJSON(accountKey(acct), a); err != nil {
		return nil, err
	}
	if err := tx.putMailbox(acct, mb); err != nil {
		return nil, err
	}
	if err := tx.initModSeq(acct, mb.ID); err != nil {
		return nil, err
	}
	tx.noteEvent(Change{Kind: MailboxCreated, Account: acct, MailboxID: mb.ID, Mailbox: mb.Name})
	tx.afterCommit(func() []Change {
		return []Change{{Kind: MailboxCreated, Account: acct, MailboxID: mb.ID, Mailbox: mb.Name}}
	})
	return mb, nil
}

// RenameMailbox renames a mailbox and its children. Renaming INBOX moves
// its messages to the new mailbox and leaves INBOX empty (RFC 9051 6.3.6):
// the new mailbox takes over INBOX's identity and INBOX gets a new one.
func (tx *Tx) RenameMailbox(acct, oldName, newName string) error {
	from, err := NormalizeMailbox(oldName)
	if err != nil {
		return err
	}
	to, err := NormalizeMailbox(newName)
	if err != nil {
		return err
	}
	mb, err := tx.Mailbox(acct, from)
	if err != nil {
		return err
	}
	if to == "INBOX" {
		return fmt.Errorf("renaming to INBOX: %w", ErrProtectedMailbox)
	}
	if _, err := tx.Mailbox(acct, to); err == nil {
		return fmt.Errorf("mailbox %q: %w", to, ErrMailboxExists)
	}
	if from == "INBOX" {
		// The new INBOX starts above the old one's MODSEQs.
		if err := tx.retireModSeq(acct, mb.ID); err != nil {
			return err
		}
		if err := tx.del(mailboxKey(acct, from)); err != nil {
			return err
		}
		mb.Name = to
		if err := tx.adoptSubscription(acct, mb); err != nil {
			return err
		}
		if err := tx.putMailbox(acct, mb); err != nil {
			return err
		}
		if _, err := tx.CreateMailbox(acct, NewMailbox{Name: "INBOX", Subscribed: true}); err != nil {
			return err
		}
		tx.announceRename(acct, mb.ID, from, to)
		return nil
	}
	boxes, err := tx.ListMailboxes(acct)
	if err != nil {
		return err
	}
	for _, b := range boxes {
		var newB string
		switch {
		case b.Name == from:
			newB = to
		case strings.HasPrefix(b.Name, from+"/"):
			newB = to + b.Name[len(from):]
		default:
			continue
		}
		if _, err := tx.Mailbox(acct, newB); err == nil {
			return fmt.Errorf("mailbox %q: %w", newB, ErrMailboxExists)
		}
		if err := tx.del(mailboxKey(acct, b.Name)); err != nil {
			return err
		}
		// A mailbox created later under the old name starts above
		// this one's MODSEQs.
		if err := tx.retireModSeq(acct, b.ID); err != nil {
			return err
		}
		oldB := b.Name
		b.Name = newB
		if err := tx.adoptSubscription(acct, b); err != nil {
			return err
		}
		if err := tx.putMailbox(acct, b); err != nil {
			return err
		}
		tx.announceRename(acct, b.ID, oldB, newB)
	}
	return nil
}

func (tx *Tx) announceRename(acct string, id uint32, from, to string) {
	tx.noteEvent(Change{Kind: MailboxRenamed, Account: acct, MailboxID: id, Mailbox: to, OldName: from})
	tx.afterCommit(func() []Change {
		return []Change{{Kind: MailboxRenamed, Account: acct, MailboxID: id, Mailbox: to, OldName: from}}
	})
}

// mailboxLeftovers reports whether message records or change log entries
// are stored under the mailbox ID.
func (tx *Tx) mailboxLeftovers(acct string, id uint32) (bool, error) {
	found := false
	for _, p := range []string{prefixMessage, prefixVanished} {
		err := tx.txn.Scan(kv.Range{Prefix: modseqBoxPrefix(p, acct, id), KeysOnly: true, Limit: 1}, func(_, _ []byte) error {
			found = true
			return nil
		})
		if err != nil || found {
			return found, err
		}
	}
	return false, nil
}

// errMailboxLive: records were to be removed as a deleted mailbox's,
// and the mailbox exists.
var errMailboxLive = errors.New("the mailbox exists: its messages are not removed")

// checkGone returns errMailboxLive if the mailbox exists: every batch
// that removes a deleted mailbox's records checks, in its own
// transaction, that it is still deleted.
func (tx *Tx) checkGone(acct string, id uint32) error {
	live, err := tx.has(mailboxIDKey(acct, id))
	if err != nil {
		return err
	}
	if live {
		return fmt.Errorf("mailbox %d of %q: %w", id, acct, errMailboxLive)
	}
	return nil
}

// deleteBatch bounds how many messages one transaction removes, to stay
// under Badger's transaction size limit.
const deleteBatch = 2000

// DeleteMailbox deletes a mailbox and its messages. INBOX cannot be
// deleted. The mailbox record goes first, in one transaction, so the
// mailbox vanishes atomically; its messages are then removed in batches.
func (s *Store) DeleteMailbox(acct, name string) error {
	var mb *MailboxInfo
	if err := s.Update(func(tx *Tx) error {
		var err error
		if mb, err = tx.Mailbox(acct, name); err != nil {
			return err
		}
		if mb.Name == "INBOX" {
			if _, err := tx.Account(acct); err == nil {
				return fmt.Errorf("deleting INBOX: %w", ErrProtectedMailbox)
			}
		}
		if err := tx.keepSubscription(acct, mb); err != nil {
			return err
		}
		// Its messages stop counting against the quota now; they are
		// removed after the commit, in batches.
		bytes, n, err := tx.boxTotals(acct, mb.ID)
		if err != nil {
			return err
		}
		if err := tx.addUsage(acct, -bytes, -n); err != nil {
			return err
		}
		return tx.dropMailbox(acct, mb)
	}); err != nil {
		return err
	}
	if err := s.removeMailboxMessages(acct, mb.ID); err != nil {
		return fmt.Errorf("deleting messages of %q: %w", name, err)
	}
	return nil
}

// dropMailbox removes a mailbox's records; its messages are left for
// removeMailboxMessages, after the commit, in batches (and for
// collectOrphanMessages, should the process stop in between).
func (tx *Tx) dropMailbox(acct string, mb *MailboxInfo) error {
	s := tx.s
	tx.recordChanged(acct, mb.ID)
	if err := tx.del(mailboxKey(acct, mb.Name)); err != nil {
		return err
	}
	if err := tx.del(mailboxIDKey(acct, mb.ID)); err != nil {
		return err
	}
	if err := tx.retireModSeq(acct, mb.ID); err != nil {
		return err
	}
	if err := tx.del(modseqStateKey(acct, mb.ID)); err != nil {
		return err
	}
	tx.noteEvent(Change{Kind: MailboxDeleted, Account: acct, MailboxID: mb.ID, Mailbox: mb.Name})
	// Its METADATA goes with it (RFC 5464 section 3.1, metadata.go).
	if err := tx.dropMetadata(metadataBoxPrefix(acct, mb.ID)); err != nil {
		return err
	}
	tx.afterCommit(func() []Change {
		delete(s.idx.boxes, mboxRef{acct, mb.ID})
		s.forgetModSeq(acct, mb.ID)
		return []Change{{Kind: MailboxDeleted, Account: acct, MailboxID: mb.ID, Mailbox: mb.Name}}
	})
	return nil
}

// removeMailboxMessages removes every message record under a mailbox ID
// (whose mailbox record is gone), then its change log, in batches.
func (s *Store) removeMailboxMessages(acct string, id uint32) error {
	if err := s.removeMessageRecords(acct, id); err != nil {
		return err
	}
	p := modseqBoxPrefix(prefixVanished, acct, id)
	for {
		var n int
		if err := s.Update(func(tx *Tx) error {
			if err := tx.checkGone(acct, id); err != nil {
				return err
			}
			keys, err := tx.firstKeys(p, deleteBatch)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := tx.del(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		}); err != nil {
			return err
		}
		if n < deleteBatch {
			break
		}
	}
	return nil
}

func (s *Store) removeMessageRecords(acct string, id uint32) error {
	for {
		var n int
		if err := s.Update(func(tx *Tx) error {
			if err := tx.checkGone(acct, id); err != nil {
				return err
			}
			var keys [][]byte
			var blobs []uint64
			err := tx.scan(messagePrefix(acct, id), false, func(k, v []byte) error {
				var m Message
				if err := decodeMessage(v, &m); err != nil {
					return err
				}
				keys = append(keys, append([]byte(nil), k...))
				blobs = append(blobs, m.Blob)
				if len(keys) >= deleteBatch {
					return errStopScan
				}
				return nil
			})
			if err != nil && err != errStopScan {
				return err
			}
			for i, k := range keys {
				m := &Message{UID: uidFromMessageKey(k), Blob: blobs[i]}
				if err := tx.removeMessageRecord(acct, id, m); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		}); err != nil {
			return err
		}
		if n < deleteBatch {
			return nil
		}
	}
}

// collectOrphanMessages removes the message records of mailboxes that no
// longer exist: DeleteMailbox removes the mailbox record first and its
// messages after, in batches, so a crash in between leaves them behind.
// Left there, they would come back when the account (deleted and created
// again, its mailbox IDs counting from 1 anew) got a mailbox of the same
// ID: the old owner's mail shown to the new one. Open runs this before
// the store is used; it seeks from mailbox to mailbox, so its cost is the
// number of mailboxes, not of messages.
func (s *Store) collectOrphanMessages() (int, error) {
	type ref struct {
		acct string
		id   uint32
	}
	var orphans []ref
	seen := make(map[ref]bool)
	// Message records, then the change log (modseq.go): each is keyed
	// <prefix><acct>\x00<mbox:4> and then tail bytes.
	spaces := []struct {
		prefix string
		tail   int
	}{{prefixMessage, 4}, {prefixVanished, 12}}
	err := s.View(func(tx *Tx) error {
		for _, sp := range spaces {
			prefix := []byte(sp.prefix)
			// One key per mailbox: after each, skip to the next
			// mailbox's first key.
			start := prefix
			for start != nil {
				var key []byte
				err := tx.txn.Scan(kv.Range{Prefix: prefix, Start: start, KeysOnly: true, Limit: 1}, func(k, _ []byte) error {
					key = bytes.Clone(k)
					return nil
				})
				if err != nil {
					return err
				}
				if key == nil {
					break
				}
				rest := key[len(prefix):]
				nul := bytes.IndexByte(rest, 0)
				if nul < 0 || len(rest) != nul+1+4+sp.tail {
					start = append(key, 0) // not a key of ours: the next one
					continue
				}
				acct := string(rest[:nul])
				id := binary.BigEndian.Uint32(rest[nul+1:])
				switch found, err := tx.has(mailboxIDKey(acct, id)); {
				case err != nil:
					return fmt.Errorf("looking up mailbox %d of %q: %w", id, acct, err)
				case !found:
					if r := (ref{acct, id}); !seen[r] {
						seen[r] = true
						orphans = append(orphans, r)
					}
				}
				if id == math.MaxUint32 {
					start = append(key, 0)
					continue
				}
				start = modseqBoxPrefix(sp.prefix, acct, id+1)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("finding orphaned messages: %w", err)
	}
	if s.afterOrphanScan != nil {
		s.afterOrphanScan()
	}
	// Other nodes of a shared database write meanwhile: each batch
	// removes what is under the ID then, in a transaction that checks
	// the mailbox is still gone (removeMailboxMessages), and no new
	// mailbox takes an ID with records left under it (CreateMailbox).
	for _, o := range orphans {
		err := s.removeMailboxMessages(o.acct, o.id)
		if errors.Is(err, errMailboxLive) {
			s.log.Error("not removing messages found without their mailbox: the mailbox exists now", "account", o.acct, "mailbox_id", o.id)
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("removing orphaned messages of mailbox %d of %q: %w", o.id, o.acct, err)
		}
		s.log.Warn("removed the messages of a mailbox deleted before a crash", "account", o.acct, "mailbox_id", o.id)
	}
	return len(orphans), nil
}

// ClaimRecent claims for a read-write SELECT the messages that are
// \Recent to it (RFC 3501 2.3.2): those from the mailbox's RecentUID, or
// from floor if that is higher (claims the caller made since, not yet
// stored), up to UIDNext, which becomes the new RecentUID. It returns
// the claimed UIDs as the range [from, next).
func (tx *Tx) ClaimRecent(acct string, id, floor uint32) (from, next uint32, err error) {
	mb, err := tx.MailboxByID(acct, id)
	if err != nil {
		return 0, 0, err
	}
	from, next = max(mb.RecentUID, floor), mb.UIDNext
	if next > mb.RecentUID {
		mb.RecentUID = next
		if err := tx.putMailbox(acct, mb); err != nil {
			return 0, 0, err
		}
	}
	return from, next, nil
}

// RaiseRecent stores that the messages below uid are claimed as \Recent
// (by a session they arrived to while it had the mailbox selected).
func (tx *Tx) RaiseRecent(acct string, id, uid uint32) error {
	mb, err := tx.MailboxByID(acct, id)
	if err != nil || uid <= mb.RecentUID {
		return err
	}
	mb.RecentUID = uid
	return tx.putMailbox(acct, mb)
}
