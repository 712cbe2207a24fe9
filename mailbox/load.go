package mailbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"certmail/kv"
)

// A restore or a migration writes a whole store into an empty one in many
// transactions (kv.Load bounds each): no engine takes gigabytes in one
// commit, and pgkv holds a transaction's writes in memory until it
// commits. In between, the target holds part of the store, which must
// never be served: a server on it would show some mailboxes and not
// others, and hand out UIDs and MODSEQs that the rest of the store holds.
//
// So a load first claims the empty target with a mark (keyLoading), in
// the transaction that checks it is empty, and removes the mark only
// once the whole stream is in, checked and synced. A load that fails
// while the engine still answers (a corrupt or truncated stream, Ctrl-C)
// deletes what it wrote, the mark last: the target is empty again. One
// that cannot (the database went away, the process was killed) leaves
// the mark, and then:
//
//   - Open refuses the store (*IncompleteError), so no server or command
//     serves part of a store;
//   - another restore or migrate refuses it too, unless asked to discard
//     it (BeginLoad's discardIncomplete: `--discard-incomplete`), which
//     empties only a store holding the mark, never a store in use.
//
// The mark is in the store, not beside it, so that every node sharing a
// database sees it, and a Badger directory carries it wherever it is
// copied.
const keyLoading = prefixSeq + "loading"

// ErrIncomplete is what an *IncompleteError wraps.
var ErrIncomplete = errors.New("the store holds an unfinished restore or migration")

// LoadMark says which load claimed a store; it is what an operator finding
// the mark needs to know.
type LoadMark struct {
	// Op is "restore" or "migrate".
	Op string `json:"op"`
	// Source is the backup file or the source store (no password).
	Source  string    `json:"source"`
	Started time.Time `json:"started"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
}

// NewLoadMark is the mark of a load by this process.
func NewLoadMark(op, source string) LoadMark {
	host, _ := os.Hostname()
	return LoadMark{Op: op, Source: source, Started: time.Now().UTC().Truncate(time.Second), Host: host, PID: os.Getpid()}
}

// IncompleteError: the store holds part of a load that did not finish.
type IncompleteError struct{ Mark LoadMark }

func (e *IncompleteError) Error() string {
	m := e.Mark
	return fmt.Sprintf("the store holds part of a %s (from %s, started %s on %s by process %d) that did not finish: it is not to be used "+
		"(certmail %s again with --discard-incomplete empties it first)",
		m.Op, m.Source, m.Started.Format(time.RFC3339), m.Host, m.PID, m.Op)
}

func (e *IncompleteError) Unwrap() error { return ErrIncomplete }

func readLoadMark(txn kv.Txn) (*LoadMark, error) {
	v, err := txn.Get([]byte(keyLoading), nil)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the load mark: %w", err)
	}
	m := new(LoadMark)
	if err := json.Unmarshal(v, m); err != nil {
		// A mark that does not parse is still a mark.
		m = &LoadMark{Op: "restore or migrate", Source: "(unreadable mark)"}
	}
	return m, nil
}

// CheckComplete returns an *IncompleteError if e holds part of a load
// that did not finish.
func CheckComplete(e kv.Engine) error {
	var m *LoadMark
	err := kv.View(e, func(txn kv.Txn) error {
		var err error
		m, err = readLoadMark(txn)
		return err
	})
	if err != nil {
		return err
	}
	if m != nil {
		return &IncompleteError{Mark: *m}
	}
	return nil
}

// BeginLoad claims e, which must be empty, for a load, marking it
// incomplete until EndLoad. A store holding an earlier load's mark is
// refused (*IncompleteError) unless discardIncomplete, when its pairs
// are deleted first (DiscardLoad): the caller has made sure that load is
// not still running (the mark cannot tell a dead load from a live one).
// Any other pair: ErrNotEmpty, and nothing is written.
func BeginLoad(e kv.Engine, m LoadMark, discardIncomplete bool) error {
	mark, err := json.Marshal(m)
	if err != nil {
		return err
	}
	for attempt := range 2 {
		var old *LoadMark
		empty := true
		err := kv.Update(e, func(txn kv.Txn) error {
			var err error
			if old, err = readLoadMark(txn); err != nil || old != nil {
				return err
			}
			empty = true
			err = txn.Scan(kv.Range{KeysOnly: true, Limit: 1}, func(k, v []byte) error {
				empty = false
				return kv.ErrStop
			})
			if err != nil || !empty {
				return err
			}
			// In the transaction that found the store empty: two loads
			// started at once conflict, and one of them finds the
			// other's mark.
			return txn.Set([]byte(keyLoading), mark)
		})
		switch {
		case err != nil:
			return fmt.Errorf("claiming the target store: %w", err)
		case old != nil && discardIncomplete && attempt == 0:
			// Once: a mark found after the discard is another load's,
			// started meanwhile, which is not this one's to discard.
			if _, err := DiscardLoad(e); err != nil {
				return err
			}
			continue
		case old != nil:
			return &IncompleteError{Mark: *old}
		case !empty:
			return ErrNotEmpty
		}
		return nil
	}
	return errors.New("claiming the target store: another load claimed it meanwhile")
}

// EndLoad makes a load whole: what it wrote is synced, then the mark is
// removed, and synced.
func EndLoad(e kv.Engine) error {
	if err := e.Sync(); err != nil {
		return fmt.Errorf("syncing the loaded store: %w", err)
	}
	if err := kv.Update(e, func(txn kv.Txn) error { return txn.Delete([]byte(keyLoading)) }); err != nil {
		return fmt.Errorf("marking the load complete: %w", err)
	}
	if err := e.Sync(); err != nil {
		return fmt.Errorf("syncing the loaded store: %w", err)
	}
	return nil
}

// DiscardLoad deletes every pair of e, which holds a load's mark, in
// batches, and the mark last, so that a discard that stops part way
// leaves a store still marked; it returns how many pairs it deleted. A
// store without the mark is refused: it is not a load's to discard.
func DiscardLoad(e kv.Engine) (int64, error) {
	if err := CheckComplete(e); err == nil {
		return 0, errors.New("discarding a load: the store holds no unfinished load: refusing to empty it")
	} else if !errors.Is(err, ErrIncomplete) {
		return 0, err
	}
	const batch = 1000
	var n int64
	var start []byte
	for {
		var keys [][]byte
		var seen int
		var last []byte
		err := kv.Update(e, func(txn kv.Txn) error {
			keys, seen = keys[:0], 0
			err := txn.Scan(kv.Range{Start: start, KeysOnly: true, Limit: batch}, func(k, _ []byte) error {
				seen++
				last = bytes.Clone(k)
				if !bytes.Equal(k, []byte(keyLoading)) {
					keys = append(keys, last)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("discarding the unfinished load (%d pairs deleted): %w", n, err)
		}
		n += int64(len(keys))
		if seen < batch {
			break
		}
		// Past the last key deleted: its tombstone need not be read again.
		start = append(last, 0)
	}
	if err := e.Sync(); err != nil {
		return n, fmt.Errorf("discarding the unfinished load: %w", err)
	}
	if err := kv.Update(e, func(txn kv.Txn) error { return txn.Delete([]byte(keyLoading)) }); err != nil {
		return n, fmt.Errorf("discarding the unfinished load: %w", err)
	}
	return n, e.Sync()
}

// UIDValidityGap is how far above the backup's UIDVALIDITY counter a
// restore starts the new UIDVALIDITYs (when the clock is not further
// ahead): the store it replaces may have created mailboxes after the
// backup, each taking the counter's next value, and a restored mailbox
// must get a UIDVALIDITY above any its name had (RFC 3501 2.3.1.1). A
// million mailboxes created between the backup and the loss is more than
// any site does; the clock (UIDVALIDITY is seeded with it) usually wins.
const UIDValidityGap = 1 << 20

// Renumbered says what NewUIDValidities gave.
type Renumbered struct {
	Mailboxes   int
	First, Last uint32
}

// newUIDValidities gives every mailbox of s a new UIDVALIDITY, above any
// the store had and above the clock, in batches, and moves the store's
// counter past them, so that mailboxes created later get higher ones
// still. UIDs, UIDNEXT, flags and everything else stay as they are: the
// new UIDVALIDITY tells every client to drop what it cached of the
// mailbox (RFC 3501 2.3.1.1, RFC 9051 2.3.1.1), MODSEQs included (RFC
// 7162 3.1.1 asks that they never go back only while UIDVALIDITY stays),
// so UIDs and MODSEQs that clients saw in the lost store, above the
// backup's, may be handed out again.
func (s *Store) newUIDValidities() (*Renumbered, error) {
	var counter uint64
	err := s.rawUpdate(func(tx *Tx) error {
		var err error
		counter, err = tx.counter("uidvalidity")
		return err
	})
	if err != nil {
		return nil, err
	}
	next := max(counter+UIDValidityGap, uint64(time.Now().Unix()))
	accts, err := s.ListAccounts()
	if err != nil {
		return nil, err
	}
	r := &Renumbered{}
	const batch = 500
	var boxes []*MailboxInfo
	var owners []string
	flush := func() error {
		if len(boxes) == 0 {
			return nil
		}
		if next+uint64(len(boxes)) > math.MaxUint32 {
			return fmt.Errorf("new UIDVALIDITYs would pass %d", uint32(math.MaxUint32))
		}
		err := s.rawUpdate(func(tx *Tx) error {
			for i, mb := range boxes {
				mb.UIDValidity = uint32(next + 1 + uint64(i))
				if err := tx.putMailbox(owners[i], mb); err != nil {
					return err
				}
			}
			return tx.set([]byte(prefixSeq+"uidvalidity"), binary.BigEndian.AppendUint64(nil, next+uint64(len(boxes))))
		})
		if err != nil {
			return fmt.Errorf("giving restored mailboxes new UIDVALIDITYs: %w", err)
		}
		if r.First == 0 {
			r.First = uint32(next + 1)
		}
		next += uint64(len(boxes))
		r.Last = uint32(next)
		r.Mailboxes += len(boxes)
		boxes, owners = boxes[:0], owners[:0]
		return nil
	}
	for _, acct := range accts {
		var list []*MailboxInfo
		err := s.View(func(tx *Tx) error {
			var err error
			list, err = tx.ListMailboxes(acct)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, mb := range list {
			boxes, owners = append(boxes, mb), append(owners, acct)
			if len(boxes) == batch {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return r, nil
}
