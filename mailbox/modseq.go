package mailbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"certmail/kv"
	"certmail/kv/keyspace"
)

// Mod-sequences (RFC 7162 CONDSTORE/QRESYNC) and the per-mailbox change
// log.
//
// Every transaction that changes a mailbox's messages (a message added,
// its flags changed, a message expunged: by APPEND, delivery, COPY, MOVE,
// STORE, EXPUNGE, and by the certified-mail paths, which call the same
// methods) takes the mailbox's next MODSEQ once, the first time it
// changes that mailbox, and every change it makes there carries it
// (RFC 7162 3.1 lets one operation give its messages one mod-sequence).
// The counter is a key of its own, read and written in the transaction, so
// it commits or is lost with the change, survives restarts and kill -9 as
// the change does, and needs no lock beyond the transaction (on a
// serializable engine two nodes changing one mailbox conflict on it, which
// is what orders them).
//
// The mailbox's change log is two ordered key ranges, both written in the
// change's transaction:
//
//	msg/<acct>\x00<mbox:4><uid:4>              each message's record carries the MODSEQ of its last change
//	gone/<acct>\x00<mbox:4><modseq:8><uid:4>   (empty); an expunge, kept for VANISHED
//	modseq/<acct>\x00<mbox:4>                  highest:8 floor:8, written at CREATE and when expunges are pruned;
//	                                           highest:8 floor:8 gone:4 (exact), written by each change on a shared engine
//	seq/modseqreserve                          R:8, the durable bound of every MODSEQ taken (below)
//	seq/modseqclean                            (empty) present while the store is closed cleanly
//
// Reading it from m (ReadLog) yields, in MODSEQ order, every message whose
// last change is after m and every expunge after m: "what changed in this
// mailbox after m", compacted to each message's last change, which is
// what a QRESYNC client, the IDLE feed or another node needs. A message's
// change rewrites its record anyway, so the log costs a flag change or an
// append no extra write; an expunge writes its gone/ key. The price is
// that the present half of a read scans the mailbox's records (the
// in-memory index serves this process; see the PostgreSQL note in
// DESIGN.md for a follower on another node). Messages written before
// mod-sequences read as MODSEQ 1.
//
// On a store that is the only writer of its engine (Badger, which it
// opened itself: Badger locks its directory), HIGHESTMODSEQ is not written
// by each change: it is the highest of the modseq/ record, the newest
// gone/ key and the newest message record, and the writer keeps it in
// memory (Store.modseqCache; one writer at a time makes that exact) after
// deriving it once. On an engine other stores may write too (nodes on
// one PostgreSQL database: Store.shared), no memory of a mailbox's state
// can be trusted, since another node may have changed it since: every
// transaction that changes a mailbox reads its modseq/ record and writes
// it back, exact (with the count of expunges kept), in the transaction.
// Two nodes changing one mailbox then both read and write that row, so
// the database orders them (one conflicts and runs again, above the
// other's MODSEQ): no MODSEQ is handed out twice, and HIGHESTMODSEQ is
// one read. The exact record is longer than the one the only writer
// keeps, which it never trusts alone; the only writer turns an exact
// record it finds (a store moved from a shared database) back into a
// hint the first time it changes the mailbox, since it will not keep it
// exact.
//
// Expunges are kept per mailbox up to Options.VanishedRetention (count).
// When more accumulate, the oldest go and the floor rises to the last
// MODSEQ dropped: every expunge after the floor is still in the log, and
// for an older MODSEQ Store.Vanished gives the full, correct answer
// instead (every UID below UIDNEXT not present now; RFC 7162 3.2.5.2 lets
// VANISHED (EARLIER) name UIDs the client never saw).
//
// A new mailbox starts above every MODSEQ any mailbox deleted or renamed
// before it reached (seq/modseqfloor), so that a name's MODSEQs are never
// reused, even with the new UIDVALIDITY that also tells clients so.
//
// No MODSEQ is handed out twice after a crash either (RFC 7162 3.1.1: a
// MODSEQ, and HIGHESTMODSEQ, never go back while UIDVALIDITY stays). On
// Badger flag changes and expunges commit without an fsync (store.go),
// and Badger writes through shared memory maps: a killed process (kill
// -9, a panic, the OOM killer) loses nothing committed, its writes being
// in the kernel's page cache already; a crash of the machine or a power
// cut loses what was committed since the last sync (at most about a
// second: the periodic sync), and with it MODSEQs that clients may have
// seen. A store that derived HIGHESTMODSEQ from the records left would
// give those MODSEQs again to other changes, and a client that saw one
// would miss them. So the store reserves MODSEQs ahead, durably:
// seq/modseqreserve holds R, and every MODSEQ a committed transaction
// took is at most R, R having been synced before that transaction
// committed (Tx.reserve; one fsync per modseqReserveStep MODSEQs of the
// busiest mailbox). Close writes seq/modseqclean after its last sync;
// Open removes it, synced before any change. Opening a store without it,
// after a crash, starts every mailbox above R (Store.modseqBase): its
// HIGHESTMODSEQ reads as at least R and its next change takes more. A
// crash costs each mailbox a jump of at most modseqReserveStep, and each
// client that notices one CHANGEDSINCE round trip that finds nothing.
// Engines whose commits are durable when they return (PostgreSQL) lose
// nothing committed and need none of this (Store.modseqDurable).
const (
	prefixModSeq   = keyspace.ModSeq
	prefixVanished = keyspace.Vanished
	// counterModSeqFloor is the seq/ counter new mailboxes start above.
	counterModSeqFloor = "modseqfloor"
	// counterModSeqReserve is R, the durable bound of every MODSEQ taken.
	counterModSeqReserve = "modseqreserve"
	// keyModSeqClean is present while the store is closed cleanly.
	keyModSeqClean = prefixSeq + "modseqclean"
	// modseqReserveStep is how far past a MODSEQ R is raised when that
	// MODSEQ would pass it.
	modseqReserveStep = 1 << 16
)

// DefaultVanishedRetention is how many expunges (UID, MODSEQ) a mailbox
// remembers for QRESYNC when Options.VanishedRetention is zero: about 40
// bytes each on disk.
const DefaultVanishedRetention = 20000

// legacyModSeq is the MODSEQ of messages and mailboxes written before
// mod-sequences were kept: RFC 7162 3.1.1 wants every message to have one,
// and no client can know a MODSEQ below it.
const legacyModSeq = 1

func modseqBoxPrefix(prefix, acct string, mboxID uint32) []byte {
	k := make([]byte, 0, len(prefix)+len(acct)+1+4+12)
	k = append(k, prefix...)
	k = append(k, acct...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, mboxID)
}

func modseqStateKey(acct string, mboxID uint32) []byte {
	return modseqBoxPrefix(prefixModSeq, acct, mboxID)
}

func logKey(prefix, acct string, mboxID uint32, modseq uint64, uid uint32) []byte {
	k := binary.BigEndian.AppendUint64(modseqBoxPrefix(prefix, acct, mboxID), modseq)
	return binary.BigEndian.AppendUint32(k, uid)
}

// modseqState is a mailbox's mod-sequence record.
type modseqState struct {
	highest uint64 // HIGHESTMODSEQ
	floor   uint64 // every expunge with a MODSEQ above it is in gone/
	gone    uint32 // gone/ entries held
	// txModSeq is the MODSEQ the current transaction took (0: none yet).
	txModSeq uint64
	// exactOnDisk: the modseq/ record is the exact form, which the
	// only writer of a store must not leave behind once it changes the
	// mailbox (it does not keep it exact).
	exactOnDisk bool
}

// Lengths of the modseq/ record: the hint the only writer keeps, and the
// exact state writers on a shared engine keep.
const (
	modseqHintLen  = 16
	modseqExactLen = 20
)

// encode returns the record: exact, or the hint (highest and floor).
func (st *modseqState) encode(exact bool) []byte {
	b := make([]byte, 0, modseqExactLen)
	b = binary.BigEndian.AppendUint64(b, st.highest)
	b = binary.BigEndian.AppendUint64(b, st.floor)
	if exact {
		b = binary.BigEndian.AppendUint32(b, st.gone)
	}
	return b
}

// modseqEntry is a mailbox's state in a transaction.
type modseqEntry struct {
	ref mboxRef
	st  modseqState
}

// txModSeqs holds the state of each mailbox a transaction changed. Most
// change one or two, which live in the Tx itself: no allocation.
type txModSeqs struct {
	fixed [2]modseqEntry
	n     int
	more  []*modseqEntry
}

func (t *txModSeqs) get(ref mboxRef) *modseqState {
	for i := 0; i < t.n && i < len(t.fixed); i++ {
		if t.fixed[i].ref == ref {
			return &t.fixed[i].st
		}
	}
	for _, e := range t.more {
		if e.ref == ref {
			return &e.st
		}
	}
	return nil
}

func (t *txModSeqs) add(ref mboxRef, st modseqState) *modseqState {
	if t.n < len(t.fixed) {
		t.fixed[t.n] = modseqEntry{ref, st}
		t.n++
		return &t.fixed[t.n-1].st
	}
	e := &modseqEntry{ref, st}
	t.more = append(t.more, e)
	return &e.st
}

func (t *txModSeqs) each(fn func(ref mboxRef, st *modseqState) error) error {
	for i := 0; i < t.n; i++ {
		if err := fn(t.fixed[i].ref, &t.fixed[i].st); err != nil {
			return err
		}
	}
	for _, e := range t.more {
		if err := fn(e.ref, &e.st); err != nil {
			return err
		}
	}
	return nil
}

// readModSeq returns the mailbox's state as this transaction sees it:
// what it changed itself, else, on a shared engine, the exact record,
// else the committed state (Store.modseqCache, kept by the only writer),
// else the state derived from disk.
func (tx *Tx) readModSeq(acct string, mboxID uint32) (modseqState, error) {
	ref := mboxRef{acct, mboxID}
	if st := tx.modseqs.get(ref); st != nil {
		return *st, nil
	}
	if tx.s.shared {
		return tx.deriveModSeq(acct, mboxID, tx.writable)
	}
	tx.s.msMu.Lock()
	st, ok := tx.s.modseqCache[ref]
	tx.s.msMu.Unlock()
	if ok {
		return st, nil
	}
	return tx.deriveModSeq(acct, mboxID, tx.writable)
}

// watchedModSeq is ModSeq for Watch, which holds wmu: on a store no other
// process writes, no commit can come between its read and now, so a state
// derived from disk is the committed one and is kept (modseqCache), as a
// writer's is. Without it, after a restart every SELECT of a mailbox not
// written since read all of its records again (90 ms a SELECT at 100,000
// messages) until something wrote to it.
func (tx *Tx) watchedModSeq(acct string, mboxID uint32) (ModSeqInfo, error) {
	if tx.s.shared {
		return tx.ModSeq(acct, mboxID)
	}
	ref := mboxRef{acct, mboxID}
	tx.s.msMu.Lock()
	st, ok := tx.s.modseqCache[ref]
	tx.s.msMu.Unlock()
	if !ok {
		var err error
		// countGone as a writer derives it: the cached state is the
		// one writers go on from.
		if st, err = tx.deriveModSeq(acct, mboxID, true); err != nil {
			return ModSeqInfo{}, err
		}
		tx.s.msMu.Lock()
		tx.s.modseqCache[ref] = st
		tx.s.msMu.Unlock()
	}
	return ModSeqInfo{HighestModSeq: st.highest, VanishedFloor: st.floor}, nil
}

// deriveModSeq reads a mailbox's state from disk: the modseq/ record
// (written when the mailbox is created and when expunges are pruned), the
// newest expunge and the message records, which hold every later MODSEQ
// (a change rewrites a record with a higher one or expunges it, leaving a
// higher gone/ key; pruning keeps the newest). It reads every record of
// the mailbox, once per mailbox and process. countGone also counts the
// expunges kept (a key-only scan of at most the retention), which only
// writers need. On a shared engine an exact record is the state, and
// nothing else is read.
func (tx *Tx) deriveModSeq(acct string, mboxID uint32, countGone bool) (modseqState, error) {
	st := modseqState{highest: legacyModSeq}
	b, err := tx.txn.Get(modseqStateKey(acct, mboxID), tx.buf)
	switch {
	case errors.Is(err, kv.ErrNotFound):
	case err != nil:
		return st, fmt.Errorf("reading MODSEQ of mailbox %d: %w", mboxID, err)
	default:
		tx.buf = b
		if len(b) != modseqHintLen && len(b) != modseqExactLen {
			return st, fmt.Errorf("MODSEQ of mailbox %d: bad record length %d", mboxID, len(b))
		}
		st.highest = binary.BigEndian.Uint64(b)
		st.floor = binary.BigEndian.Uint64(b[8:])
		if len(b) == modseqExactLen {
			st.gone = binary.BigEndian.Uint32(b[16:])
			if tx.s.shared {
				return st, nil
			}
			st.exactOnDisk = true
			st.gone = 0 // counted below
		}
	}
	// The newest expunge: the last key of the change log.
	p := modseqBoxPrefix(prefixVanished, acct, mboxID)
	err = tx.txn.Scan(kv.Range{Prefix: p, Reverse: true, KeysOnly: true, Limit: 1}, func(k, _ []byte) error {
		if k := k[len(p):]; len(k) == 12 {
			st.highest = max(st.highest, binary.BigEndian.Uint64(k))
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("reading the change log of mailbox %d: %w", mboxID, err)
	}
	err = tx.scan(messagePrefix(acct, mboxID), false, func(_, v []byte) error {
		var m Message
		if err := decodeMessage(v, &m); err != nil {
			return err
		}
		st.highest = max(st.highest, m.ModSeq)
		return nil
	})
	if err != nil {
		return st, err
	}
	// After a crash, every mailbox starts above what it may have handed
	// out and lost (see the constants above).
	st.highest = max(st.highest, tx.s.modseqBase)
	if countGone {
		err := tx.scan(modseqBoxPrefix(prefixVanished, acct, mboxID), true, func(_, _ []byte) error {
			st.gone++
			return nil
		})
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// modseq returns the mailbox's state with the MODSEQ this transaction
// gives its changes there, taking the next one on the first call. The
// change log entries the transaction writes are what makes it durable;
// the committed state goes to Store.modseqs after the commit.
func (tx *Tx) modseq(acct string, mboxID uint32) (*modseqState, error) {
	ref := mboxRef{acct, mboxID}
	if st := tx.modseqs.get(ref); st != nil {
		return st, nil
	}
	st, err := tx.readModSeq(acct, mboxID)
	if err != nil {
		return nil, err
	}
	st.highest++
	st.txModSeq = st.highest
	return tx.modseqs.add(ref, st), nil
}

// initModSeq writes the state of a new mailbox: it starts above every
// MODSEQ a mailbox deleted or renamed before reached.
func (tx *Tx) initModSeq(acct string, mboxID uint32) error {
	floor, err := tx.counter(counterModSeqFloor)
	if err != nil {
		return err
	}
	st := &modseqState{highest: floor + 1, floor: floor + 1}
	return tx.set(modseqStateKey(acct, mboxID), st.encode(tx.s.shared))
}

// retireModSeq raises the store-wide floor to the mailbox's HIGHESTMODSEQ:
// the mailbox is being deleted, or its name is being given up.
func (tx *Tx) retireModSeq(acct string, mboxID uint32) error {
	st, err := tx.readModSeq(acct, mboxID)
	if err != nil {
		return err
	}
	floor, err := tx.counter(counterModSeqFloor)
	if err != nil {
		return err
	}
	if st.highest <= floor {
		return nil
	}
	return tx.set([]byte(prefixSeq+counterModSeqFloor), binary.BigEndian.AppendUint64(nil, st.highest))
}

// counter reads a named store-wide counter without changing it.
func (tx *Tx) counter(name string) (uint64, error) {
	n, _, err := tx.getUint64([]byte(prefixSeq + name))
	if err != nil {
		return 0, fmt.Errorf("counter %s: %w", name, err)
	}
	return n, nil
}

// logExpunged records that message uid was expunged.
func (tx *Tx) logExpunged(acct string, mboxID uint32, st *modseqState, uid uint32) error {
	st.gone++
	return tx.set(logKey(prefixVanished, acct, mboxID, st.txModSeq, uid), nil)
}

// flushModSeqs runs before the commit: it drops the oldest expunges of
// a mailbox that holds more than the retention (with an eighth of slack,
// so that the pruning scan runs once per retention/8 expunges, not on
// each), recording the new floor in the modseq/ record. On a shared
// engine it writes every changed mailbox's exact record; the only writer
// turns an exact record it found into a hint.
func (tx *Tx) flushModSeqs() error {
	shared := tx.s.shared
	return tx.modseqs.each(func(ref mboxRef, st *modseqState) error {
		keep := tx.s.vanishedRetention
		pruned := false
		if int(st.gone) > keep+keep/8 {
			if err := tx.pruneVanished(ref, st, int(st.gone)-keep); err != nil {
				return err
			}
			pruned = true
		}
		if !shared && !pruned && !st.exactOnDisk {
			return nil
		}
		st.exactOnDisk = false
		return tx.set(modseqStateKey(ref.acct, ref.id), st.encode(shared))
	})
}

// reserve runs before the commit, with Store.wmu held: when a MODSEQ the
// transaction took passes the reserve R, R is raised past it and synced
// first, in a transaction of its own, so that no MODSEQ is ever visible
// above a durable R (see the constants above).
func (tx *Tx) reserve() error {
	s := tx.s
	var top uint64
	tx.modseqs.each(func(_ mboxRef, st *modseqState) error {
		top = max(top, st.txModSeq)
		return nil
	})
	if top <= s.modseqReserve {
		return nil
	}
	r := top + s.modseqReserveStep
	err := s.rawUpdate(func(tx *Tx) error {
		return tx.set([]byte(prefixSeq+counterModSeqReserve), binary.BigEndian.AppendUint64(nil, r))
	})
	if err == nil {
		err = s.Sync()
	}
	if err != nil {
		return fmt.Errorf("reserving MODSEQs up to %d: %w", r, err)
	}
	s.modseqReserve = r
	return nil
}

// rawUpdate runs fn in a write transaction of its own and commits it,
// without the rest of UpdateFrom (the caller holds wmu or is Open/Close).
func (s *Store) rawUpdate(fn func(tx *Tx) error) error {
	txn, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("starting transaction: %w", err)
	}
	defer txn.Discard()
	tx := &Tx{s: s, txn: txn, writable: true}
	if err := fn(tx); err != nil {
		return err
	}
	// After the commit, or a COMMIT whose answer was lost (which may
	// have committed): reccache.go.
	defer tx.dropChangedRecords()
	return txn.Commit()
}

// openModSeqs runs in Open, before anything else reads or writes the
// store: it reads R, starts every mailbox above it if the store was not
// closed cleanly, and removes the clean mark, durably, before any change.
func (s *Store) openModSeqs() error {
	var clean bool
	err := s.rawUpdate(func(tx *Tx) error {
		r, err := tx.counter(counterModSeqReserve)
		if err != nil {
			return err
		}
		s.modseqReserve = r
		if clean, err = tx.has([]byte(keyModSeqClean)); err != nil || !clean {
			return err
		}
		return tx.del([]byte(keyModSeqClean))
	})
	if err == nil {
		err = s.db.Sync()
	}
	if err != nil {
		return fmt.Errorf("opening MODSEQ state: %w", err)
	}
	if !clean {
		s.modseqBase = s.modseqReserve
		if s.modseqBase > 0 {
			s.log.Warn("store was not closed cleanly (or was restored from a backup): mailboxes resume their MODSEQs above the reserve, so that none is handed out twice", "modseq", s.modseqBase)
		}
	}
	return nil
}

// closeModSeqs runs in Close after the last write: every change is
// synced, then the clean mark is written and synced.
func (s *Store) closeModSeqs() error {
	if err := s.db.Sync(); err != nil {
		return err
	}
	if err := s.rawUpdate(func(tx *Tx) error { return tx.set([]byte(keyModSeqClean), nil) }); err != nil {
		return err
	}
	return s.db.Sync()
}

// publishModSeqs runs after the commit, with Store.wmu held: the states
// the transaction wrote are now the committed ones.
func (tx *Tx) publishModSeqs() {
	if tx.modseqs.n == 0 || tx.s.shared {
		return
	}
	tx.s.msMu.Lock()
	defer tx.s.msMu.Unlock()
	tx.modseqs.each(func(ref mboxRef, st *modseqState) error {
		c := *st
		c.txModSeq = 0
		tx.s.modseqCache[ref] = c
		return nil
	})
}

// forgetModSeq drops a deleted mailbox's committed state.
func (s *Store) forgetModSeq(acct string, mboxID uint32) {
	s.msMu.Lock()
	defer s.msMu.Unlock()
	delete(s.modseqCache, mboxRef{acct, mboxID})
}

func (tx *Tx) pruneVanished(ref mboxRef, st *modseqState, n int) error {
	prefix := modseqBoxPrefix(prefixVanished, ref.acct, ref.id)
	keys, err := tx.firstKeys(prefix, n)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.del(k); err != nil {
			return err
		}
		st.floor = max(st.floor, binary.BigEndian.Uint64(k[len(prefix):]))
	}
	st.gone -= uint32(len(keys))
	return nil
}

// firstKeys returns copies of the first n keys under prefix, in key
// order: the batches that deletions of unbounded prefixes take, so that
// no transaction outgrows Badger's limit.
func (tx *Tx) firstKeys(prefix []byte, n int) ([][]byte, error) {
	var keys [][]byte
	err := tx.scan(prefix, true, func(k, _ []byte) error {
		keys = append(keys, slices.Clone(k))
		if len(keys) >= n {
			return errStopScan
		}
		return nil
	})
	if err != nil && err != errStopScan {
		return nil, fmt.Errorf("scanning %q: %w", prefix, err)
	}
	return keys, nil
}

// LogEntry is one entry of a mailbox's change log.
type LogEntry struct {
	ModSeq uint64
	UID    uint32
	// Expunged: the message is gone. Otherwise it is present, as Message
	// (its record as of the read) says: added or changed at ModSeq.
	Expunged bool
	Message  *Message
}

// ModSeqInfo is a mailbox's mod-sequence state.
type ModSeqInfo struct {
	// HighestModSeq is the MODSEQ of the mailbox's last change (RFC 7162
	// HIGHESTMODSEQ).
	HighestModSeq uint64
	// VanishedFloor: every expunge with a MODSEQ above it is in the log;
	// older ones have been forgotten (Options.VanishedRetention).
	VanishedFloor uint64
}

// ModSeq returns a mailbox's mod-sequence state.
func (tx *Tx) ModSeq(acct string, mboxID uint32) (ModSeqInfo, error) {
	st, err := tx.readModSeq(acct, mboxID)
	if err != nil {
		return ModSeqInfo{}, err
	}
	return ModSeqInfo{HighestModSeq: st.highest, VanishedFloor: st.floor}, nil
}

// ReadLog returns the mailbox's change log after since, in MODSEQ order
// (UID order within one MODSEQ), at most limit entries (all if limit <= 0),
// with the state it was read at. A follower applies the entries to its
// snapshot and reads again from the last MODSEQ; if since is below the
// state's VanishedFloor, expunges may be missing and it must start again
// from a snapshot.
func (s *Store) ReadLog(acct string, mboxID uint32, since uint64, limit int) ([]LogEntry, ModSeqInfo, error) {
	var out []LogEntry
	var info ModSeqInfo
	err := s.View(func(tx *Tx) error {
		if _, err := tx.MailboxByID(acct, mboxID); err != nil {
			return err
		}
		var err error
		if info, err = tx.ModSeq(acct, mboxID); err != nil {
			return err
		}
		out, err = tx.readLog(acct, mboxID, since, limit)
		return err
	})
	return out, info, err
}

func (tx *Tx) readLog(acct string, mboxID uint32, since uint64, limit int) ([]LogEntry, error) {
	var out []LogEntry
	err := tx.scan(messagePrefix(acct, mboxID), false, func(_, v []byte) error {
		var m Message
		if err := decodeMessage(v, &m); err != nil {
			return err
		}
		if m.ModSeq > since {
			out = append(out, LogEntry{ModSeq: m.ModSeq, UID: m.UID, Message: &m})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p := modseqBoxPrefix(prefixVanished, acct, mboxID)
	start := binary.BigEndian.AppendUint64(slices.Clone(p), since+1)
	err = tx.txn.Scan(kv.Range{Prefix: p, Start: start, KeysOnly: true, Limit: max(limit, 0)}, func(key, _ []byte) error {
		k := key[len(p):]
		if len(k) != 12 {
			return fmt.Errorf("bad change log key %q", key)
		}
		out = append(out, LogEntry{ModSeq: binary.BigEndian.Uint64(k), UID: binary.BigEndian.Uint32(k[8:]), Expunged: true})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b LogEntry) int {
		if a.ModSeq != b.ModSeq {
			if a.ModSeq < b.ModSeq {
				return -1
			}
			return 1
		}
		return int(int64(a.UID) - int64(b.UID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// UIDRange is an inclusive range of UIDs.
type UIDRange struct{ Lo, Hi uint32 }

// Vanished returns the UIDs expunged from the mailbox after MODSEQ since
// (RFC 7162 3.2.5 VANISHED (EARLIER), 3.2.6 UID FETCH ... VANISHED), as
// ascending ranges. exact is false when since is older than the expunges
// kept: the answer is then every UID below UIDNEXT that is not present,
// a superset a QRESYNC client accepts (it ignores UIDs it does not hold).
func (s *Store) Vanished(acct string, mboxID uint32, since uint64) (uids []UIDRange, exact bool, err error) {
	var mb *MailboxInfo
	var info ModSeqInfo
	var gone []uint32
	err = s.View(func(tx *Tx) error {
		var err error
		if mb, err = tx.MailboxByID(acct, mboxID); err != nil {
			return err
		}
		if info, err = tx.ModSeq(acct, mboxID); err != nil {
			return err
		}
		if since < info.VanishedFloor {
			return nil
		}
		p := modseqBoxPrefix(prefixVanished, acct, mboxID)
		start := binary.BigEndian.AppendUint64(slices.Clone(p), since+1)
		return tx.txn.Scan(kv.Range{Prefix: p, Start: start, KeysOnly: true}, func(k, _ []byte) error {
			gone = append(gone, uidFromMessageKey(k))
			return nil
		})
	})
	if err != nil {
		return nil, false, err
	}
	if since >= info.VanishedFloor {
		slices.Sort(gone)
		return toRanges(slices.Compact(gone)), true, nil
	}
	// Older than what is kept: everything not here now.
	msgs, err := s.Messages(acct, mboxID)
	if err != nil {
		return nil, false, err
	}
	var out []UIDRange
	next := uint32(1)
	for _, m := range msgs {
		if m.UID > next {
			out = append(out, UIDRange{next, m.UID - 1})
		}
		next = m.UID + 1
	}
	if mb.UIDNext > next {
		out = append(out, UIDRange{next, mb.UIDNext - 1})
	}
	return out, false, nil
}

func toRanges(uids []uint32) []UIDRange {
	var out []UIDRange
	for _, u := range uids {
		if n := len(out); n > 0 && out[n-1].Hi+1 == u {
			out[n-1].Hi = u
			continue
		}
		out = append(out, UIDRange{u, u})
	}
	return out
}
