package mailbox

import "sync"

// CatchUp returns once every change another node committed before the
// call is applied to this node's index and announced (OnChange), as this
// node's own commits are when they return. Without it a node hears of
// the others' commits a moment later (a wake-up, else FollowInterval),
// and an IMAP session there could be answered from before a change that
// a session on another node had already been told was done: a NOOP after
// another session's EXPUNGE that reports nothing (RFC 3501 6.1.2: NOOP is
// the poll for updates; imaptest's two-connection scripts on two nodes
// failed so). On a store that follows no one (none other shares it, or
// Options.FollowInterval is negative or Brief: a CLI command) it returns
// at once.
//
// Callers that arrive together share one read of the change journal: a
// caller waits for a read that starts after it arrived, so a burst of
// callers costs one or two reads, not one each. The read is a wake-up's
// (followWakeLookback): what committed before the call has a bulletin
// time within that window of the newest this node has seen, unless the
// nodes' clocks are further apart than that (the journal's own
// assumption for wake-ups; the periodic read covers the rest).
func (s *Store) CatchUp() error {
	f := s.follow
	if f == nil || !f.barrier.on {
		return nil
	}
	if f.sole != nil {
		// While this node is the sole writer, no other process has
		// committed since its last read began: there is nothing to read.
		if began := f.readBegan.Load(); began != nil && f.sole.Sole(*began) {
			return nil
		}
	}
	return f.barrier.wait(func() error { return f.pollLocked(followWakeLookback) })
}

// barrier coalesces CatchUp's journal reads. At most one read runs
// (running); callers arriving while it runs join the next (queued), which
// starts when it ends.
type barrier struct {
	on      bool // the store follows others (set at Open)
	mu      sync.Mutex
	running *barrierRound
	queued  *barrierRound
}

type barrierRound struct {
	done chan struct{}
	err  error
}

// wait runs read, or waits for a run of it that starts after the call.
func (b *barrier) wait(read func() error) error {
	b.mu.Lock()
	if b.running == nil {
		r := &barrierRound{done: make(chan struct{})}
		b.running = r
		b.mu.Unlock()
		b.run(r, read)
		return r.err
	}
	// A read is running, begun before this call: it may have missed a
	// commit that returned just before. Join the next one.
	r := b.queued
	if r == nil {
		r = &barrierRound{done: make(chan struct{})}
		b.queued = r
	}
	b.mu.Unlock()
	<-r.done
	return r.err
}

// run does round r, then hands the queued round, if any, to a goroutine
// of its own, so that this caller returns with its own round.
func (b *barrier) run(r *barrierRound, read func() error) {
	r.err = read()
	b.mu.Lock()
	next := b.queued
	b.queued = nil
	b.running = next
	b.mu.Unlock()
	close(r.done)
	if next != nil {
		go b.run(next, read)
	}
}
