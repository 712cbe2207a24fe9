package mailbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"certmail/kv/keyspace"
)

// METADATA (RFC 5464): entries an account keeps on the server as a whole
// (server annotations, mailbox "") and on each of its mailboxes, under
// /private/ and /shared/ (section 3.2). Since every mailbox has one owner,
// both namespaces are the account's own. Entries are kept by mailbox ID,
// so a RENAME takes them along (the mailbox and its children keep their
// IDs; RENAME INBOX gives them to the renamed mailbox, and the new INBOX
// starts without); DELETE of a mailbox removes them (dropMailbox), and so
// does deleting the account (DeleteAccount).
//
//	meta/<acct>\x00<mbox id:4><entry>   metadataRecordV1 value
//
// Server entries are under mailbox ID 0, which no mailbox has (IDs start
// at 1). Entry names are kept folded to lower case: RFC 5464 section 3.2
// makes them case-insensitive. The value is prefixed by its record
// version, so that an empty value is not an empty record.
//
// Every change is announced on the change feed as MetadataChanged
// Changes, one per entry, for NOTIFY (RFC 5465 section 5.6:
// MailboxMetadataChange, ServerMetadataChange), on every node of a shared
// store (the change bulletin carries them, follow.go).

const prefixMetadata = keyspace.Metadata

const metadataRecordV1 = 1

// ServerMetadataID is the mailbox ID server entries are kept under, and
// the MailboxID of their MetadataChanged changes.
const ServerMetadataID uint32 = 0

// Errors of SetMetadata, past a MetadataLimits limit.
var (
	// ErrMetadataTooLarge: a value is larger than MaxEntrySize (RFC 5464
	// 4.3: NO [METADATA MAXSIZE n]).
	ErrMetadataTooLarge = errors.New("metadata value too large")
	// ErrMetadataTooMany: the account would have more than MaxEntries
	// entries or MaxBytes bytes of them (NO [METADATA TOOMANY]).
	ErrMetadataTooMany = errors.New("too many metadata entries")
)

// MetadataLimits bound what one account keeps. A limit of 0 or less is
// no limit.
type MetadataLimits struct {
	MaxEntrySize int64 // bytes of one value
	MaxEntries   int   // entries, server and mailbox ones together
	MaxBytes     int64 // bytes of every entry's name and value together
}

// MetadataEntry is an entry name and its value; a nil Value removes the
// entry in SetMetadata.
type MetadataEntry struct {
	Name  string
	Value []byte
}

// MetadataDepth is how far below a named entry Metadata reads (RFC 5464
// 4.2.2).
type MetadataDepth int

const (
	MetadataDepthZero     MetadataDepth = 0  // the entry itself
	MetadataDepthOne      MetadataDepth = 1  // and its children
	MetadataDepthInfinity MetadataDepth = -1 // and everything below it
)

func metadataAccountPrefix(acct string) []byte { return []byte(prefixMetadata + acct + "\x00") }

func metadataBoxPrefix(acct string, id uint32) []byte {
	return binary.BigEndian.AppendUint32(metadataAccountPrefix(acct), id)
}

func metadataKey(acct string, id uint32, entry string) []byte {
	return append(metadataBoxPrefix(acct, id), strings.ToLower(entry)...)
}

// metadataBox resolves a mailbox name to the ID its entries are kept
// under: "" is the server.
func (tx *Tx) metadataBox(acct, mbox string) (uint32, string, error) {
	if mbox == "" {
		if _, err := tx.Account(acct); err != nil {
			return 0, "", err
		}
		return ServerMetadataID, "", nil
	}
	mb, err := tx.Mailbox(acct, mbox)
	if err != nil {
		return 0, "", err
	}
	return mb.ID, mb.Name, nil
}

// Metadata returns the entries of a mailbox ("" for the server) that the
// names and depth select, each once, in key order; names that select
// nothing are left out.
func (tx *Tx) Metadata(acct, mbox string, names []string, depth MetadataDepth) ([]MetadataEntry, error) {
	id, _, err := tx.metadataBox(acct, mbox)
	if err != nil {
		return nil, err
	}
	var out []MetadataEntry
	seen := make(map[string]bool)
	add := func(k, v []byte) error {
		name := string(k[len(metadataBoxPrefix(acct, id)):])
		if seen[name] {
			return nil
		}
		if len(v) == 0 || v[0] != metadataRecordV1 {
			return fmt.Errorf("metadata entry %q of %q: %w", name, acct, errBadRecord)
		}
		seen[name] = true
		out = append(out, MetadataEntry{Name: name, Value: bytes.Clone(v[1:])})
		return nil
	}
	for _, n := range names {
		key := metadataKey(acct, id, n)
		v, found, err := tx.get(key)
		if err != nil {
			return nil, err
		}
		if found {
			if err := add(key, v); err != nil {
				return nil, err
			}
		}
		if depth == MetadataDepthZero {
			continue
		}
		below := append(key, '/')
		if err := tx.scan(below, false, func(k, v []byte) error {
			if depth == MetadataDepthOne && bytes.IndexByte(k[len(below):], '/') >= 0 {
				return nil
			}
			return add(k, v)
		}); err != nil {
			return nil, fmt.Errorf("reading metadata of %q: %w", acct, err)
		}
	}
	return out, nil
}

// SetMetadata sets entries of a mailbox ("" for the server), removing
// those with a nil Value, all or none (RFC 5464 4.3), within the
// account's limits. Names must be valid entry names (the protocol layer
// checks them).
func (tx *Tx) SetMetadata(acct, mbox string, entries []MetadataEntry, lim MetadataLimits) error {
	id, name, err := tx.metadataBox(acct, mbox)
	if err != nil {
		return err
	}
	changed := make([]string, 0, len(entries))
	grows := false
	for _, e := range entries {
		if lim.MaxEntrySize > 0 && int64(len(e.Value)) > lim.MaxEntrySize {
			return fmt.Errorf("metadata entry %q: %w (%d bytes, limit %d)", e.Name, ErrMetadataTooLarge, len(e.Value), lim.MaxEntrySize)
		}
		key := metadataKey(acct, id, e.Name)
		if e.Value == nil {
			if err := tx.del(key); err != nil {
				return err
			}
		} else {
			grows = true
			v := make([]byte, 0, 1+len(e.Value))
			v = append(append(v, metadataRecordV1), e.Value...)
			if err := tx.set(key, v); err != nil {
				return err
			}
		}
		changed = append(changed, strings.ToLower(e.Name))
		// Other nodes' sessions hear of it too (follow.go): NOTIFY's
		// MailboxMetadataChange and ServerMetadataChange (RFC 5465 5.6).
		tx.noteEvent(Change{Kind: MetadataChanged, Account: acct, MailboxID: id, Mailbox: name, Entry: strings.ToLower(e.Name)})
	}
	// Counted after the writes, in the same transaction: what the
	// account would keep. Removals alone never fail, so a user over a
	// lowered limit can make room.
	if grows && (lim.MaxEntries > 0 || lim.MaxBytes > 0) {
		n, size, err := tx.metadataUsage(acct)
		if err != nil {
			return err
		}
		if lim.MaxEntries > 0 && n > lim.MaxEntries {
			return fmt.Errorf("account %q: %w (%d entries, limit %d)", acct, ErrMetadataTooMany, n, lim.MaxEntries)
		}
		if lim.MaxBytes > 0 && size > lim.MaxBytes {
			return fmt.Errorf("account %q: %w (%d bytes, limit %d)", acct, ErrMetadataTooMany, size, lim.MaxBytes)
		}
	}
	tx.afterCommit(func() []Change {
		out := make([]Change, 0, len(changed))
		for _, e := range changed {
			out = append(out, Change{Kind: MetadataChanged, Account: acct, MailboxID: id, Mailbox: name, Entry: e})
		}
		return out
	})
	return nil
}

// metadataUsage counts an account's entries and the bytes of their names
// and values.
func (tx *Tx) metadataUsage(acct string) (n int, size int64, err error) {
	prefix := metadataAccountPrefix(acct)
	err = tx.scan(prefix, false, func(k, v []byte) error {
		n++
		size += int64(len(k)-len(prefix)-4) + int64(len(v)-1)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("counting metadata of %q: %w", acct, err)
	}
	return n, size, nil
}

// dropMetadata removes the entries kept under a prefix: a mailbox's, or
// the whole account's.
func (tx *Tx) dropMetadata(prefix []byte) error {
	var keys [][]byte
	if err := tx.scan(prefix, true, func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	}); err != nil {
		return fmt.Errorf("listing metadata: %w", err)
	}
	for _, k := range keys {
		if err := tx.del(k); err != nil {
			return err
		}
	}
	return nil
}
