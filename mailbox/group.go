package mailbox

import (
	"encoding/json"
	"fmt"
	"sync"
)

// Group commit, for writers whose transactions arrive many at a time and
// touch little in common: deliveries.
//
// A node's write transactions run one at a time (Store.wmu), and on
// PostgreSQL each pays its round trips and a COMMIT that waits for the
// database's WAL flush. With eight LMTP connections delivering at once,
// the node spent about 2 ms of every 2.2 ms holding the lock, and the
// deliveries queued behind it (ingest at 0.7-0.9x Dovecot's rate, whose
// eight LMTP processes each write and fsync on their own). Letting the
// transactions run side by side does not help there: they conflict
// (SERIALIZABLE's predicate locks are taken per index page, so even
// deliveries to different accounts abort each other), and each
// conflict costs a whole transaction again. Instead, the updates that
// arrive while one runs wait together and then run in one transaction,
// one after another, with one COMMIT, one bulletin and one wake-up for
// the lot: what MULTIAPPEND does for one client, done across clients.
//
// An update in a group sees the writes of those before it (a second
// delivery to a mailbox takes the next UID), and gives its changes the
// group's MODSEQ in each mailbox (RFC 7162 3.1 lets messages share
// one). If any update in a group fails, the group is rolled back and
// each of its updates runs again alone, so that each gets its own
// outcome and one recipient over quota fails no one else's delivery.
//
// The updates of a group run one after another, so each one's reads
// would be round trips of their own while the others wait: the group
// reads ahead, in two round trips for all of them, what appending to the
// mailboxes they name (AppendTarget) reads first.
//
// Only a shared store groups (Store.shared): on Badger a transaction
// commits in memory and the delivery's fsync is shared already
// (Store.Sync), so there is nothing to gain.
const (
	// groupMaxUpdates bounds the updates in one group.
	groupMaxUpdates = 32
	// groupMaxBytes bounds what the updates of one group write, by the
	// sizes their callers announce; a larger update runs alone. It
	// keeps a group's transaction well below what PostgreSQL takes in
	// one statement (1 GB) and its memory to a few messages' worth.
	groupMaxBytes = 16 << 20
)

// groupCommit is the queue of grouped updates. The update at the head
// of the queue leads: it takes the next group from the head, runs it,
// and hands the lead to the next update waiting, if any, so that no
// caller works for others after its own update is done.
type groupCommit struct {
	mu      sync.Mutex
	running bool // an update leads
	queue   []*groupedUpdate
}

// AppendTarget names a mailbox an update adds messages to.
type AppendTarget struct{ Account, Mailbox string }

type groupedUpdate struct {
	fn      func(tx *Tx) error
	size    int64
	targets []AppendTarget
	// wake is closed when the update is done (done set, err its
	// outcome) or is to lead (done false).
	wake chan struct{}
	done bool
	err  error
}

// UpdateGrouped is Update for a transaction that may share its commit
// with others arriving at the same time (see above). size is about what
// fn writes, in bytes; targets are the mailboxes it adds messages to
// (read ahead; a mailbox fn does not find is no error here). fn must be re-runnable, as for UpdateFrom, and
// must be able to run after other updates in the same transaction: it
// reads what it needs through tx, never from state a commit updates. The
// changes it makes are announced with no source.
func (s *Store) UpdateGrouped(size int64, targets []AppendTarget, fn func(tx *Tx) error) error {
	if !s.shared || size > groupMaxBytes {
		return s.Update(fn)
	}
	g := &s.group
	u := &groupedUpdate{fn: fn, size: size, targets: targets, wake: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, u)
	if g.running {
		g.mu.Unlock()
		<-u.wake
		if u.done {
			return u.err
		}
		// Handed the lead: u is at the head of the queue.
	} else {
		g.running = true
		g.mu.Unlock()
	}
	// Deferred: an update that panics must not leave the queue
	// without a leader.
	defer g.handOff()
	s.runGroup(u, g.take())
	return u.err
}

// take removes the next group from the head of the queue: at least one
// update, up to the bounds.
func (g *groupCommit) take() []*groupedUpdate {
	g.mu.Lock()
	defer g.mu.Unlock()
	n, size := 1, g.queue[0].size
	for n < len(g.queue) && n < groupMaxUpdates && size+g.queue[n].size <= groupMaxBytes {
		size += g.queue[n].size
		n++
	}
	group := make([]*groupedUpdate, n)
	copy(group, g.queue)
	g.queue = append(g.queue[:0], g.queue[n:]...)
	return group
}

// handOff passes the lead to the update at the head of the queue, or
// ends the run if none waits.
func (g *groupCommit) handOff() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.running = false
		return
	}
	close(g.queue[0].wake)
}

// runGroup runs a group (whose first update, leader, is the caller's)
// and tells each other update its outcome.
func (s *Store) runGroup(leader *groupedUpdate, group []*groupedUpdate) {
	defer func() {
		// A panic in one update's fn (which the caller's goroutine
		// may recover from) must not leave the others waiting.
		if r := recover(); r != nil {
			for _, u := range group {
				if u != leader && !u.done {
					u.err, u.done = fmt.Errorf("an update sharing the transaction panicked: %v", r), true
					close(u.wake)
				}
			}
			panic(r)
		}
	}()
	if len(group) == 1 {
		leader.err = s.Update(leader.fn)
		return
	}
	err := s.Update(func(tx *Tx) error {
		var targets []AppendTarget
		for _, u := range group {
			targets = append(targets, u.targets...)
		}
		if err := tx.prefetchTargets(targets); err != nil {
			return err
		}
		for _, u := range group {
			if err := u.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	for _, u := range group {
		if err != nil {
			// One update's own error, or the store's: each runs
			// again alone, for its own outcome.
			u.err = s.Update(u.fn)
		}
		if u != leader {
			u.done = true
			close(u.wake)
		}
	}
}

// prefetchTargets reads ahead what appending to each target reads: the
// mailbox's record and the account's usage, then the mailbox's MODSEQ
// state (its key needs the record's ID).
func (tx *Tx) prefetchTargets(targets []AppendTarget) error {
	type box struct {
		acct string
		key  []byte
	}
	var keys [][]byte
	var boxes []box
	accts := make(map[string]bool)
	for _, t := range targets {
		name, err := NormalizeMailbox(t.Mailbox)
		if err != nil {
			continue // the update itself says what is wrong
		}
		k := mailboxKey(t.Account, name)
		keys = append(keys, k)
		boxes = append(boxes, box{t.Account, k})
		if !accts[t.Account] {
			accts[t.Account] = true
			keys = append(keys, usageKey(t.Account))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if err := tx.w.prefetch(keys...); err != nil {
		return err
	}
	keys = keys[:0]
	for _, b := range boxes {
		p := tx.w.pre[string(b.key)]
		if !p.found {
			continue
		}
		var mb MailboxInfo
		if err := json.Unmarshal(p.value, &mb); err != nil {
			continue // read again, and reported, by the update
		}
		keys = append(keys, modseqStateKey(b.acct, mb.ID))
	}
	if len(keys) == 0 {
		return nil
	}
	return tx.w.prefetch(keys...)
}
