package mailbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"certmail/kv"
	"certmail/kv/keyspace"
)

// Following other nodes' commits (issue 13).
//
// On an engine that several processes share (kv.Notifier: PostgreSQL),
// every node keeps its own in-memory index (index.go) and change feed
// (changes.go), and must hear of the commits the others make. So every
// transaction that changes what they hold also writes, in the same
// transaction, a bulletin to the change journal:
//
//	feed/<time:8><node:8><n:4>   what the transaction changed (encodeBulletin)
//
// naming, per mailbox, the MODSEQ it took and the UIDs it added, changed
// and expunged, and the mailboxes it created, renamed and deleted and the
// accounts it deleted; and it publishes a wake-up (kv.Notifier.Notify)
// that the database delivers to every node once, and only if, it commits.
// A node woken, or every Options.FollowInterval in any case, reads the
// journal on from where it was and applies what others wrote to its index
// and change feed, as its own commits are (follower.poll).
//
// Why a store-wide journal rather than a per-mailbox high-water mark: a
// node must find the few mailboxes that changed among all it has loaded
// without asking each, must learn of changes that are in no mailbox's log
// (a mailbox created, renamed or deleted, an account deleted), and must
// apply a flag change without scanning the mailbox for it (the log of
// present messages is the records themselves, in UID order, so reading
// "what changed after MODSEQ m" is a scan of the whole mailbox). The
// journal answers all three with one range read a poll. Changes that
// touch no message (the mailbox list, subscriptions, METADATA entries, an
// account deleted) travel as events: each is announced by the nodes that
// read it as it was on the node that made it. Its keys are
// ordered by time, which is not commit order across nodes, so a node
// reads from a while (followLookback) before the newest time it has seen
// and skips the bulletins it has handled; a node's clock is kept ahead of
// every time it has read (a hybrid logical clock), so a slow clock does
// not put its bulletins behind the others'. For mailboxes the journal is
// only a guide: each bulletin carries the MODSEQ it took and the one
// before, so a node sees a missing link in a mailbox's chain (a bulletin
// that committed after the node had read past it) and then reads that
// mailbox's change log (ReadLog) from the MODSEQ its index is at. The
// MODSEQ order is the truth: what a node applies and announces for a
// mailbox is in MODSEQ order, each change once.
//
// Bulletins older than followRetention are deleted by whichever node
// comes by (follower.collect). On Badger (one process) none of this runs:
// Store.follow is nil, and nothing is written.

const (
	// DefaultFollowInterval is how often a node reads the journal when no
	// wake-up came: the bound on how late it hears of another's commit
	// when notifications are lost or absent (CockroachDB, YugabyteDB).
	DefaultFollowInterval = 500 * time.Millisecond
	// followLookback is how far before the newest bulletin time seen a
	// read starts: a transaction that takes its time and commits later
	// than that is found by the MODSEQ chain instead.
	followLookback = 5 * time.Second
	// followWakeLookback is the shorter window of a read a wake-up
	// prompted: what it wants committed just now, and reading the whole
	// window on each of hundreds of wake-ups a second cost kilobytes
	// per commit. A bulletin that commits later than that after its
	// time is found by the periodic read, which covers the whole window.
	followWakeLookback = 100 * time.Millisecond
	// followRetention is how long bulletins are kept; a node that could
	// not read the journal for longer reads each loaded mailbox's log.
	followRetention = 2 * time.Minute
	// followCollectEvery is how often a node deletes old bulletins.
	followCollectEvery = 30 * time.Second
	// bulletinMaxUIDs bounds the UIDs a bulletin names per mailbox and
	// kind; a transaction that touched more says "all", and a node
	// holding the mailbox reads its log.
	bulletinMaxUIDs = 1 << 16
)

const prefixFeed = keyspace.Feed

// follower is a store's side of following other nodes. Its fields after
// wake are guarded by Store.wmu.
type follower struct {
	s        *Store
	notifier kv.Notifier
	node     [8]byte
	nodeHex  string
	interval time.Duration
	wake     chan struct{}
	n        atomic.Uint32

	// clock is the newest bulletin time seen or written (UnixNano).
	clock int64
	// scanFloor is when the last read that handled the journal whole
	// began (UnixNano, before its snapshot). A read starts its window
	// from it if it is newer than clock: whatever that read did not
	// find committed after its snapshot, within the window of its own
	// time. Starting from clock alone, every catch-up of a node whose
	// mailboxes were quiet read the newest window of bulletins again (51
	// rows, two round trips, after a burst of 50 deliveries).
	scanFloor int64
	// seen holds the bulletins handled (this node's own included), by
	// key, with their times, for the window a read covers.
	seen map[string]int64
	// lastRead is when the journal was last read successfully.
	lastRead time.Time
	// failing counts polls failed in a row, warned when it was last
	// logged (report; the poll goroutine's own).
	failing int
	warned  time.Time
	// barrier coalesces Store.CatchUp's reads (barrier.go).
	barrier barrier
	// sole, when set, tells whether this node is for now the only one
	// writing (Options.SoleLease); readBegan is when the last read of
	// the journal that succeeded began (before its snapshot).
	sole      kv.SoleWriter
	readBegan atomic.Pointer[time.Time]
}

func newFollower(s *Store, n kv.Notifier, interval time.Duration) *follower {
	f := &follower{s: s, notifier: n, interval: interval, wake: make(chan struct{}, 1), seen: make(map[string]int64)}
	rand.Read(f.node[:])
	f.nodeHex = hex.EncodeToString(f.node[:])
	f.clock = time.Now().UnixNano()
	f.lastRead = time.Now()
	return f
}

// start subscribes to wake-ups and runs the poll loop until ctx ends.
func (f *follower) start(ctx context.Context) {
	stop, err := f.notifier.Subscribe(func(payload string) {
		if payload == f.nodeHex {
			return // our own commit: applied already
		}
		select {
		case f.wake <- struct{}{}:
		default:
		}
	})
	switch {
	case errors.Is(err, kv.ErrNoNotify):
		f.s.log.Info("no notifications from the database: following other nodes by polling", "interval", f.interval)
	case err != nil:
		f.s.log.Warn("subscribing to other nodes' commits: polling only", "err", err)
	}
	f.s.done.Add(1)
	go func() {
		defer f.s.done.Done()
		if stop != nil {
			defer stop()
		}
		t := time.NewTicker(f.interval)
		defer t.Stop()
		var lastCollect time.Time
		for {
			window := followLookback
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-f.wake:
				window = followWakeLookback
			}
			f.report(f.pollLocked(window))
			if time.Since(lastCollect) >= followCollectEvery {
				lastCollect = time.Now()
				if err := f.collect(); err != nil {
					f.s.log.Debug("deleting old change bulletins", "err", err)
				}
			}
		}
	}()
}

// report logs a failed poll: the first of a run, then once a minute
// (the database may be down for a while: every poll fails), and the
// recovery.
func (f *follower) report(err error) {
	switch {
	case err == nil && f.failing > 0:
		f.s.log.Info("reading other nodes' changes again", "failed", f.failing)
		f.failing = 0
	case err != nil:
		if f.failing == 0 || time.Since(f.warned) >= time.Minute {
			f.s.log.Warn("reading other nodes' changes", "err", err, "failed", f.failing+1)
			f.warned = time.Now()
		}
		f.failing++
	}
}

// pollLocked reads and applies the journal, taking the write lock.
func (f *follower) pollLocked(window time.Duration) error {
	f.s.wmu.Lock()
	defer f.s.wmu.Unlock()
	if f.s.closed {
		return nil
	}
	began := time.Now()
	changes, err := f.poll(nil, window)
	if err != nil {
		// Not caught up: nothing may be answered from cached
		// records (reccache.go) until a poll succeeds.
		f.s.recs.dropAll()
	} else {
		f.readBegan.Store(&began)
	}
	for _, c := range changes {
		f.s.emit(c)
	}
	return err
}

// txNotes is what a transaction changed that other nodes must hear of.
type txNotes struct {
	boxes  []*boxNote
	events []Change
}

type boxNote struct {
	ref                      mboxRef
	added, changed, expunged []uint32
	all                      bool
}

func (tx *Tx) boxNote(acct string, id uint32) *boxNote {
	if tx.notes == nil {
		tx.notes = &txNotes{}
	}
	for _, b := range tx.notes.boxes {
		if b.ref.acct == acct && b.ref.id == id {
			return b
		}
	}
	b := &boxNote{ref: mboxRef{acct, id}}
	tx.notes.boxes = append(tx.notes.boxes, b)
	return b
}

// noteAdded, noteChanged and noteExpunged record a message change for
// other nodes (nothing on a store no other process shares).
func (tx *Tx) noteAdded(acct string, id, uid uint32) {
	if tx.s.follow != nil {
		b := tx.boxNote(acct, id)
		b.added = append(b.added, uid)
	}
}

func (tx *Tx) noteChanged(acct string, id, uid uint32) {
	if tx.s.follow != nil {
		b := tx.boxNote(acct, id)
		b.changed = append(b.changed, uid)
	}
}

func (tx *Tx) noteExpunged(acct string, id, uid uint32) {
	if tx.s.follow != nil {
		b := tx.boxNote(acct, id)
		b.expunged = append(b.expunged, uid)
	}
}

// noteEvent records a change to the mailbox list or an account.
func (tx *Tx) noteEvent(c Change) {
	if tx.s.follow == nil {
		return
	}
	if tx.notes == nil {
		tx.notes = &txNotes{}
	}
	tx.notes.events = append(tx.notes.events, c)
}

// writeBulletin runs in UpdateFrom before the commit, with wmu held: the
// transaction's notes go to the journal, and other nodes are woken when
// it commits.
func (tx *Tx) writeBulletin() error {
	f := tx.s.follow
	if f == nil || tx.notes == nil {
		return nil
	}
	f.clock = max(time.Now().UnixNano(), f.clock+1)
	key := make([]byte, 0, len(prefixFeed)+20)
	key = append(key, prefixFeed...)
	key = binary.BigEndian.AppendUint64(key, uint64(f.clock))
	key = append(key, f.node[:]...)
	key = binary.BigEndian.AppendUint32(key, f.n.Add(1))
	if err := tx.set(key, tx.encodeBulletin()); err != nil {
		return err
	}
	// Ours: never applied again (if the commit fails, the key never
	// appears, and leaves the map with the window).
	f.seen[string(key)] = f.clock
	txn := tx.txn
	if tx.w.Txn != nil {
		txn = tx.w.Txn // the engine's own, which it recognises
	}
	if err := f.notifier.Notify(txn, f.nodeHex); err != nil {
		return fmt.Errorf("publishing the change: %w", err)
	}
	return nil
}

// Bulletin versions. V2 adds each event's Entry (a METADATA entry's
// name, RFC 5464) after its OldName. A bulletin with no Entry is written
// as V1, so that a node still on the older version, which skips a version
// it does not know, misses only the METADATA changes of a rolling
// upgrade, never a mailbox's.
const (
	bulletinV1 = 1
	bulletinV2 = 2
)

func (tx *Tx) encodeBulletin() []byte {
	n := tx.notes
	version := byte(bulletinV1)
	for _, c := range n.events {
		if c.Entry != "" {
			version = bulletinV2
		}
	}
	b := []byte{version}
	b = binary.AppendUvarint(b, uint64(len(n.boxes)))
	for _, bn := range n.boxes {
		var modseq uint64
		if st := tx.modseqs.get(bn.ref); st != nil {
			modseq = st.txModSeq
		}
		b = appendString(b, bn.ref.acct)
		b = binary.AppendUvarint(b, uint64(bn.ref.id))
		b = binary.AppendUvarint(b, modseq)
		all := bn.all || len(bn.added) > bulletinMaxUIDs || len(bn.changed) > bulletinMaxUIDs || len(bn.expunged) > bulletinMaxUIDs
		if all {
			b = append(b, 1)
			continue
		}
		b = append(b, 0)
		for _, l := range [][]uint32{bn.added, bn.changed, bn.expunged} {
			b = binary.AppendUvarint(b, uint64(len(l)))
			for _, u := range l {
				b = binary.AppendUvarint(b, uint64(u))
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(len(n.events)))
	for _, c := range n.events {
		b = append(b, byte(c.Kind))
		b = appendString(b, c.Account)
		b = binary.AppendUvarint(b, uint64(c.MailboxID))
		b = appendString(b, c.Mailbox)
		b = appendString(b, c.OldName)
		if version >= bulletinV2 {
			b = appendString(b, c.Entry)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// bulletin is a decoded journal entry.
type bulletin struct {
	boxes  []bulletinBox
	events []Change
}

type bulletinBox struct {
	ref                      mboxRef
	modseq                   uint64
	all                      bool
	added, changed, expunged []uint32
}

var errBadBulletin = errors.New("malformed change bulletin")

func decodeBulletin(b []byte) (*bulletin, error) {
	if len(b) == 0 || (b[0] != bulletinV1 && b[0] != bulletinV2) {
		return nil, errBadBulletin
	}
	version := b[0]
	b = b[1:]
	bad := false
	uvar := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	str := func() string {
		n := uvar()
		if bad || n > uint64(len(b)) {
			bad = true
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	list := func() []uint32 {
		n := uvar()
		if bad || n > uint64(len(b)) {
			bad = true
			return nil
		}
		l := make([]uint32, 0, n)
		for range n {
			l = append(l, uint32(uvar()))
		}
		return l
	}
	out := &bulletin{}
	nb := uvar()
	for i := uint64(0); i < nb && !bad; i++ {
		var bb bulletinBox
		bb.ref.acct = str()
		bb.ref.id = uint32(uvar())
		bb.modseq = uvar()
		if bad || len(b) == 0 {
			return nil, errBadBulletin
		}
		bb.all = b[0] == 1
		b = b[1:]
		if !bb.all {
			bb.added, bb.changed, bb.expunged = list(), list(), list()
		}
		out.boxes = append(out.boxes, bb)
	}
	ne := uvar()
	for i := uint64(0); i < ne && !bad; i++ {
		if len(b) == 0 {
			return nil, errBadBulletin
		}
		c := Change{Kind: ChangeKind(b[0])}
		b = b[1:]
		c.Account = str()
		c.MailboxID = uint32(uvar())
		c.Mailbox = str()
		c.OldName = str()
		if version >= bulletinV2 {
			c.Entry = str()
		}
		out.events = append(out.events, c)
	}
	if bad || len(b) != 0 {
		return nil, errBadBulletin
	}
	return out, nil
}

// journalEntry is a bulletin read from the journal.
type journalEntry struct {
	key  string
	time int64
	*bulletin
}

// boxPlan is what a poll does for one mailbox.
type boxPlan struct {
	ref mboxRef
	bi  *boxIndex // nil: not loaded here
	// notes are the mailbox's parts of the bulletins, in MODSEQ order.
	notes []bulletinBox
	// For a loaded mailbox: the log entries to apply (records read,
	// expunges), and the MODSEQ the index is at afterwards.
	log  []LogEntry
	mark uint64
	// limit: apply nothing above it except messages the index lacks
	// (catch-up before a local commit at limit+1); 0: none.
	limit uint64
	// upTo: in a catch-up, the highest UID the local transaction added
	// or changed in the mailbox; a message the index lacks above the
	// limit is added first only up to it (it came before the local
	// change, or the local change is to it), not above (a later commit:
	// the next poll's).
	upTo uint32
	// For a mailbox not loaded: the records read, by UID.
	records  map[uint32]*Message
	expunges int
}

// poll reads the journal in one snapshot and applies what other nodes
// committed to the index, returning the changes to announce, in order.
// wmu is held. limits, when set, are the mailboxes a local transaction
// has just committed to, each with the MODSEQ before its own: the poll
// brings them up to that point (catchUp).
func (f *follower) poll(limits map[mboxRef]catchUpLimit, window time.Duration) ([]Change, error) {
	var rd *pollRead
	err := f.s.View(func(tx *Tx) error {
		var err error
		rd, err = f.readIn(tx, limits, window)
		return err
	})
	if err != nil {
		return nil, err
	}
	return f.applyRead(rd, limits), nil
}

// pollRead is what a poll read: the bulletins, and per mailbox what to
// apply.
type pollRead struct {
	entries []journalEntry
	plans   []*boxPlan
	began   int64 // the snapshot's Tx.began
}

// readIn is the reading half of a poll, in tx's snapshot. wmu is held.
// loadBox reads in the snapshot it loads a mailbox from, so that what it
// loads has been announced (applyRead, before the index is in place).
func (f *follower) readIn(tx *Tx, limits map[mboxRef]catchUpLimit, window time.Duration) (*pollRead, error) {
	resync := limits == nil && time.Since(f.lastRead) > followRetention-followLookback
	entries, err := f.readJournal(tx, limits != nil, window)
	if err != nil {
		return nil, err
	}
	// What another node's bulletin names may have changed its records
	// (reccache.go); a resync may follow bulletins no longer there.
	if resync {
		f.s.recs.dropAll()
	}
	for _, e := range entries {
		for _, bb := range e.boxes {
			f.s.recs.drop(bb.ref.acct)
		}
		for _, c := range e.events {
			f.s.recs.drop(c.Account)
		}
	}
	rd := &pollRead{entries: entries, plans: f.plan(entries, limits, resync), began: tx.began}
	for _, p := range rd.plans {
		if err := f.read(tx, p); err != nil {
			return nil, fmt.Errorf("mailbox %d of %q: %w", p.ref.id, p.ref.acct, err)
		}
	}
	return rd, nil
}

// applyRead is the applying half: the index follows, and the changes to
// announce come back. wmu is held.
func (f *follower) applyRead(rd *pollRead, limits map[mboxRef]catchUpLimit) []Change {
	s := f.s
	var changes []Change
	s.idx.mu.Lock()
	for _, p := range rd.plans {
		changes = append(changes, f.apply(p)...)
	}
	s.idx.mu.Unlock()
	if limits != nil {
		// A catch-up applies only its mailboxes, up to their limits;
		// the next poll handles the bulletins whole (what the catch-up
		// applied, it then finds in the index).
		return changes
	}
	f.lastRead = time.Now()
	f.scanFloor = max(f.scanFloor, rd.began)
	for _, e := range rd.entries {
		for _, c := range e.events {
			switch c.Kind {
			case MailboxDeleted:
				s.idx.mu.Lock()
				delete(s.idx.boxes, mboxRef{c.Account, c.MailboxID})
				s.idx.mu.Unlock()
				s.forgetModSeq(c.Account, c.MailboxID)
			case AccountDeleted:
				s.auth.forget(c.Account)
			}
			changes = append(changes, c)
		}
	}
	for _, e := range rd.entries {
		f.seen[e.key] = e.time
	}
	floor := f.clock - int64(followLookback)
	for k, t := range f.seen {
		if t < floor {
			delete(f.seen, k)
		}
	}
	return changes
}

// readJournal returns the bulletins of other nodes not handled yet, in
// journal order, and moves the clock on to the newest time read.
func (f *follower) readJournal(tx *Tx, catchUp bool, window time.Duration) ([]journalEntry, error) {
	start := binary.BigEndian.AppendUint64([]byte(prefixFeed), uint64(max(max(f.clock, f.scanFloor)-int64(window), 0)))
	var out []journalEntry
	clock := f.clock
	// A catch-up (limits) reads without moving the clock: the next
	// poll reads the same window whole.
	defer func(before int64) {
		if catchUp {
			f.clock = before
		}
	}(f.clock)
	// Read to the end: Expect makes a window of up to 1,024 bulletins
	// one round trip (a wake-up or a catch-up on a busy cluster reads
	// 100 ms of another node's commits; from 32 rows up that took two
	// or three).
	err := tx.txn.Scan(kv.Range{Prefix: []byte(prefixFeed), Start: start, Expect: 1024}, func(k, v []byte) error {
		rest := k[len(prefixFeed):]
		if len(rest) != 20 {
			return nil // not a bulletin key
		}
		t := int64(binary.BigEndian.Uint64(rest))
		clock = max(clock, t)
		if _, ok := f.seen[string(k)]; ok || bytes.Equal(rest[8:16], f.node[:]) {
			return nil
		}
		b, err := decodeBulletin(v)
		if err != nil {
			f.s.log.Warn("skipping a change bulletin", "key", fmt.Sprintf("%x", k), "err", err)
			return nil
		}
		out = append(out, journalEntry{key: string(k), time: t, bulletin: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the change journal: %w", err)
	}
	f.clock = clock
	return out, nil
}

// plan groups the bulletins' mailbox parts by mailbox and decides, for
// each loaded mailbox, whether the bulletins alone say what changed since
// its index's MODSEQ (an unbroken chain) or its log must be read.
func (f *follower) plan(entries []journalEntry, limits map[mboxRef]catchUpLimit, resync bool) []*boxPlan {
	s := f.s
	byRef := make(map[mboxRef]*boxPlan)
	var plans []*boxPlan
	get := func(ref mboxRef) *boxPlan {
		p := byRef[ref]
		if p == nil {
			l := limits[ref]
			p = &boxPlan{ref: ref, limit: l.limit, upTo: l.upTo}
			s.idx.mu.RLock()
			p.bi = s.idx.boxes[ref]
			s.idx.mu.RUnlock()
			byRef[ref] = p
			plans = append(plans, p)
		}
		return p
	}
	for _, e := range entries {
		for _, bb := range e.boxes {
			if limits != nil && limits[bb.ref].limit == 0 {
				continue // a catch-up: only its mailboxes
			}
			p := get(bb.ref)
			p.notes = append(p.notes, bb)
		}
	}
	// Mailboxes a local commit needs caught up, and after a long
	// silence every loaded one, are read even without bulletins.
	for ref := range limits {
		get(ref)
	}
	if resync {
		s.idx.mu.RLock()
		refs := make([]mboxRef, 0, len(s.idx.boxes))
		for ref := range s.idx.boxes {
			refs = append(refs, ref)
		}
		s.idx.mu.RUnlock()
		for _, ref := range refs {
			get(ref)
		}
	}
	for _, p := range plans {
		slices.SortFunc(p.notes, func(a, b bulletinBox) int { return cmpUint64(a.modseq, b.modseq) })
	}
	return plans
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// read reads, in the poll's snapshot, what a plan needs.
func (f *follower) read(tx *Tx, p *boxPlan) error {
	acct, id := p.ref.acct, p.ref.id
	if p.bi == nil {
		// Not loaded: announce each bulletin's changes as they are now.
		var uids []uint32
		for _, n := range p.notes {
			if n.all {
				continue // nobody here holds the mailbox to resync
			}
			uids = append(uids, n.added...)
			uids = append(uids, n.changed...)
			p.expunges += len(n.expunged)
		}
		var err error
		p.records, err = tx.readRecords(acct, id, uids)
		return err
	}
	mark := p.bi.modseq
	p.mark = mark
	// The chain: each bulletin's MODSEQ follows the previous one's (a
	// mailbox's MODSEQs are taken one after another, Tx.modseq), the
	// first the index's. Bulletins at or below the index's are in it.
	chain := true
	var uids []uint32
	var gone []LogEntry
	var hi uint64
	for _, n := range p.notes {
		if n.modseq <= mark || (p.limit > 0 && n.modseq > p.limit) {
			continue
		}
		if n.all || n.modseq != max(hi, mark)+1 {
			chain = false
			break
		}
		hi = n.modseq
		uids = append(uids, n.added...)
		uids = append(uids, n.changed...)
		for _, uid := range n.expunged {
			gone = append(gone, LogEntry{ModSeq: n.modseq, UID: uid, Expunged: true})
		}
	}
	if p.limit > 0 && max(hi, mark) < p.limit {
		chain = false
	}
	if p.limit == 0 && len(p.notes) == 0 {
		chain = false // resync: no bulletins, read the log
	}
	if !chain {
		// Read the log from the index's MODSEQ: a scan of the mailbox.
		log, err := tx.readLog(acct, id, mark, 0)
		if errors.Is(err, ErrNoMailbox) {
			return nil
		}
		if err != nil {
			return err
		}
		p.log = log
		for _, e := range log {
			if p.limit == 0 || e.ModSeq <= p.limit {
				p.mark = max(p.mark, e.ModSeq)
			}
		}
		if p.limit > 0 {
			p.mark = max(p.mark, p.limit)
		}
		return nil
	}
	p.mark = max(mark, hi)
	// The chain is whole: the bulletins name every message changed and
	// expunged since the index's MODSEQ; read the records they name.
	records, err := tx.readRecords(acct, id, uids)
	if err != nil {
		return err
	}
	for uid, m := range records {
		if m != nil && m.ModSeq > mark {
			p.log = append(p.log, LogEntry{ModSeq: m.ModSeq, UID: uid, Message: m})
		}
	}
	p.log = append(p.log, gone...)
	return nil
}

// readRecords reads the records of uids (nil for those gone), in one
// range scan when they lie close together (a delivery's, a STORE's:
// one round trip on PostgreSQL), else one by one.
func (tx *Tx) readRecords(acct string, id uint32, uids []uint32) (map[uint32]*Message, error) {
	out := make(map[uint32]*Message, len(uids))
	if len(uids) == 0 {
		return out, nil
	}
	slices.Sort(uids)
	uids = slices.Compact(uids)
	for _, uid := range uids {
		out[uid] = nil
	}
	lo, hi := uids[0], uids[len(uids)-1]
	if len(uids) > 1 && uint64(hi-lo) < 4*uint64(len(uids))+64 {
		r := kv.Range{Prefix: messagePrefix(acct, id), Start: messageKey(acct, id, lo)}
		if hi < math.MaxUint32 {
			r.End = messageKey(acct, id, hi+1)
		}
		err := tx.txn.Scan(r, func(k, v []byte) error {
			uid := uidFromMessageKey(k)
			if _, want := out[uid]; !want {
				return nil
			}
			var m Message
			if err := decodeMessage(v, &m); err != nil {
				return fmt.Errorf("message %d: %w", uid, err)
			}
			out[uid] = &m
			return nil
		})
		return out, err
	}
	for _, uid := range uids {
		m, err := tx.Message(acct, id, uid)
		if errors.Is(err, ErrNoMessage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[uid] = m
	}
	return out, nil
}

// apply applies a plan to the index (idx.mu held) and returns the changes
// to announce.
func (f *follower) apply(p *boxPlan) []Change {
	acct, id := p.ref.acct, p.ref.id
	var out []Change
	if p.bi == nil {
		for _, n := range p.notes {
			for _, uid := range n.expunged {
				out = append(out, Change{Kind: MessageExpunged, Account: acct, MailboxID: id, Message: &Message{UID: uid}, ModSeq: n.modseq})
			}
			for _, uid := range n.added {
				if m := p.records[uid]; m != nil {
					out = append(out, Change{Kind: MessageAdded, Account: acct, MailboxID: id, Message: m, ModSeq: m.ModSeq})
				}
			}
			for _, uid := range n.changed {
				// Announced once, by the bulletin of its last change.
				if m := p.records[uid]; m != nil && m.ModSeq == n.modseq {
					out = append(out, Change{Kind: MessageFlags, Account: acct, MailboxID: id, Message: m, ModSeq: m.ModSeq})
				}
			}
		}
		if len(p.notes) > 0 {
			f.s.raiseModSeq(p.ref, p.notes[len(p.notes)-1].modseq, p.expunges)
		}
		return out
	}
	bi := p.bi
	// In MODSEQ order; within one, expunges first (a MOVE within the
	// mailbox reads as EXPUNGE before EXISTS, as local commits announce
	// it), then by UID.
	slices.SortFunc(p.log, func(a, b LogEntry) int {
		if c := cmpUint64(a.ModSeq, b.ModSeq); c != 0 {
			return c
		}
		if a.Expunged != b.Expunged {
			if a.Expunged {
				return -1
			}
			return 1
		}
		return cmpUint64(uint64(a.UID), uint64(b.UID))
	})
	// New messages go in UID order, whatever their MODSEQ: a session
	// numbers messages by UID, and a message added before another but
	// changed after it (its record's MODSEQ is its last change's) must
	// still come first. So adding one adds every newer-MODSEQ one of a
	// lower UID before it.
	var fresh []LogEntry
	for _, e := range p.log {
		if _, present := bi.find(e.UID); !present && !e.Expunged && (p.limit == 0 || e.ModSeq <= p.limit || e.UID <= p.upTo) {
			fresh = append(fresh, e)
		}
	}
	slices.SortFunc(fresh, func(a, b LogEntry) int { return cmpUint64(uint64(a.UID), uint64(b.UID)) })
	add := func(e LogEntry) {
		seq := bi.put(e.Message)
		out = append(out, Change{Kind: MessageAdded, Account: acct, MailboxID: id, Message: e.Message, Seq: seq, Count: uint32(len(bi.msgs)), ModSeq: e.ModSeq})
	}
	expunges := 0
	for _, e := range p.log {
		i, present := bi.find(e.UID)
		beyond := p.limit > 0 && e.ModSeq > p.limit
		switch {
		case e.Expunged:
			if !present || beyond {
				continue
			}
			m := bi.msgs[i]
			seq, _ := bi.remove(e.UID)
			expunges++
			out = append(out, Change{Kind: MessageExpunged, Account: acct, MailboxID: id, Message: m, Seq: seq, Count: uint32(len(bi.msgs)), ModSeq: e.ModSeq})
		case present:
			if beyond || bi.msgs[i].ModSeq >= e.ModSeq {
				continue // the local commit announces it, or it is in already
			}
			seq := bi.put(e.Message)
			out = append(out, Change{Kind: MessageFlags, Account: acct, MailboxID: id, Message: e.Message, Seq: seq, Count: uint32(len(bi.msgs)), ModSeq: e.ModSeq})
		default:
			// New here. Above a catch-up's limit, only up to the
			// UIDs the local commit touched: those came before it
			// (or it changed them again, and announces only a flag
			// change: sessions must have had them first).
			if beyond && e.UID > p.upTo {
				continue
			}
			for len(fresh) > 0 && fresh[0].UID <= e.UID {
				if _, in := bi.find(fresh[0].UID); !in {
					add(fresh[0])
				}
				fresh = fresh[1:]
			}
		}
	}
	bi.modseq = max(bi.modseq, p.mark)
	f.s.raiseModSeq(p.ref, bi.modseq, expunges)
	return out
}

// raiseModSeq brings this node's committed MODSEQ state of a mailbox
// (modseqCache) up to what another node committed.
func (s *Store) raiseModSeq(ref mboxRef, highest uint64, expunges int) {
	s.msMu.Lock()
	defer s.msMu.Unlock()
	st, ok := s.modseqCache[ref]
	if !ok || st.highest >= highest {
		return
	}
	st.highest = highest
	st.gone += uint32(expunges)
	s.modseqCache[ref] = st
}

// catchUpLimit is how far a catch-up brings a mailbox (boxPlan).
type catchUpLimit struct {
	limit uint64
	upTo  uint32
}

// catchUp runs in UpdateFrom after the commit, with wmu held, before the
// transaction's own changes reach the index: a mailbox it changed whose
// index is behind the MODSEQ the transaction started from has changes of
// other nodes not applied yet, which must be, and announced, first (in
// MODSEQ order: a session must see another node's new message 5 before
// this node's 6).
func (tx *Tx) catchUp() []Change {
	f := tx.s.follow
	if f == nil || tx.modseqs.n == 0 {
		return nil
	}
	var limits map[mboxRef]catchUpLimit
	tx.s.idx.mu.RLock()
	tx.modseqs.each(func(ref mboxRef, st *modseqState) error {
		if bi := tx.s.idx.boxes[ref]; bi != nil && st.txModSeq > 0 && bi.modseq < st.txModSeq-1 {
			if limits == nil {
				limits = make(map[mboxRef]catchUpLimit)
			}
			l := catchUpLimit{limit: st.txModSeq - 1}
			if tx.notes != nil {
				for _, b := range tx.notes.boxes {
					if b.ref == ref {
						l.upTo = max(slices.Max(append(b.added, 0)), slices.Max(append(b.changed, 0)))
					}
				}
			}
			limits[ref] = l
		}
		return nil
	})
	tx.s.idx.mu.RUnlock()
	if limits == nil {
		return nil
	}
	changes, err := f.poll(limits, followLookback)
	if err != nil {
		// The index cannot be trusted for those mailboxes: drop it;
		// the next read loads it again.
		tx.s.log.Warn("catching up with other nodes before a commit", "err", err)
		tx.s.recs.dropAll()
		tx.s.idx.mu.Lock()
		for ref := range limits {
			delete(tx.s.idx.boxes, ref)
		}
		tx.s.idx.mu.Unlock()
	}
	return changes
}

// afterPost runs after the transaction's own changes reached the index:
// each loaded mailbox it changed is now at the transaction's MODSEQ.
func (tx *Tx) afterPost() {
	if tx.s.follow == nil || tx.modseqs.n == 0 {
		return
	}
	tx.modseqs.each(func(ref mboxRef, st *modseqState) error {
		if bi := tx.s.idx.boxes[ref]; bi != nil {
			bi.modseq = max(bi.modseq, st.txModSeq)
		}
		return nil
	})
}

// loadMark returns the MODSEQ a mailbox's index loaded in tx is at: the
// highest of its state record, its newest expunge and its records
// (recordsHigh), as deriveModSeq reads it.
func (tx *Tx) loadMark(acct string, id uint32, recordsHigh uint64) (uint64, error) {
	high := recordsHigh
	b, err := tx.txn.Get(modseqStateKey(acct, id), nil)
	switch {
	case errors.Is(err, kv.ErrNotFound):
	case err != nil:
		return 0, err
	case len(b) >= 8: // highest first (modseqState.encode)
		high = max(high, binary.BigEndian.Uint64(b))
	}
	p := modseqBoxPrefix(prefixVanished, acct, id)
	err = tx.txn.Scan(kv.Range{Prefix: p, Reverse: true, KeysOnly: true, Limit: 1}, func(k, _ []byte) error {
		if k := k[len(p):]; len(k) == 12 {
			high = max(high, binary.BigEndian.Uint64(k))
		}
		return nil
	})
	return high, err
}

// collect deletes bulletins older than followRetention, a batch at a
// time; several nodes may, and a conflict just ends the round.
func (f *follower) collect() error {
	f.s.wmu.Lock()
	cutoff := f.clock - int64(followRetention)
	f.s.wmu.Unlock()
	if cutoff <= 0 {
		return nil
	}
	end := binary.BigEndian.AppendUint64([]byte(prefixFeed), uint64(cutoff))
	for range 10 {
		var n int
		err := f.s.rawUpdate(func(tx *Tx) error {
			var keys [][]byte
			err := tx.txn.Scan(kv.Range{Prefix: []byte(prefixFeed), End: end, KeysOnly: true, Limit: 1000}, func(k, _ []byte) error {
				keys = append(keys, bytes.Clone(k))
				return nil
			})
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
		})
		if err != nil || n < 1000 {
			return err
		}
	}
	return nil
}
