package mailbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"certmail/kv/keyspace"
)

// Timers are durable deadlines (certified-item expiry, auto-forward of
// unread mail, alerts) kept in the store so they survive restarts. They are
// indexed by due time, so finding what is due reads only what is due, and
// by (kind, id), so a timer can be moved or cancelled.
//
//	timer/<due unix nanos:8><kind>\x00<id>   payload
//	timerid/<kind>\x00<id>                  due unix nanos:8

const (
	prefixTimer   = keyspace.Timer
	prefixTimerID = keyspace.TimerID
)

// Timer is a scheduled deadline.
type Timer struct {
	Due     time.Time
	Kind    string
	ID      string
	Payload []byte
}

func timerKey(due time.Time, kind, id string) []byte {
	k := binary.BigEndian.AppendUint64([]byte(prefixTimer), uint64(due.UnixNano()))
	return append(append(append(k, kind...), 0), id...)
}

func timerIDKey(kind, id string) []byte {
	return []byte(prefixTimerID + kind + "\x00" + id)
}

// ScheduleTimer sets (or moves) the timer (kind, id) to due.
func (tx *Tx) ScheduleTimer(t Timer) error {
	if err := tx.CancelTimer(t.Kind, t.ID); err != nil {
		return err
	}
	if err := tx.set(timerKey(t.Due, t.Kind, t.ID), t.Payload); err != nil {
		return err
	}
	return tx.set(timerIDKey(t.Kind, t.ID), binary.BigEndian.AppendUint64(nil, uint64(t.Due.UnixNano())))
}

// CancelTimer removes the timer (kind, id) if it exists.
func (tx *Tx) CancelTimer(kind, id string) error {
	ns, found, err := tx.getUint64(timerIDKey(kind, id))
	if err != nil {
		return fmt.Errorf("reading timer %s/%s: %w", kind, id, err)
	}
	if !found {
		return nil
	}
	due := time.Unix(0, int64(ns))
	if err := tx.del(timerKey(due, kind, id)); err != nil {
		return err
	}
	return tx.del(timerIDKey(kind, id))
}

// CancelTimers removes every timer of kind whose id starts with idPrefix
// (the timers of one account, say) and returns how many there were.
func (tx *Tx) CancelTimers(kind, idPrefix string) (int, error) {
	var ids []string
	prefix := timerIDKey(kind, idPrefix)
	if err := tx.scan(prefix, true, func(k, _ []byte) error {
		ids = append(ids, idPrefix+string(k[len(prefix):]))
		return nil
	}); err != nil {
		return 0, fmt.Errorf("listing %s timers %q: %w", kind, idPrefix, err)
	}
	for _, id := range ids {
		if err := tx.CancelTimer(kind, id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// TimerDue returns when the timer (kind, id) is due, if it is scheduled.
func (tx *Tx) TimerDue(kind, id string) (time.Time, bool, error) {
	ns, found, err := tx.getUint64(timerIDKey(kind, id))
	if err != nil || !found {
		if err != nil {
			err = fmt.Errorf("reading timer %s/%s: %w", kind, id, err)
		}
		return time.Time{}, false, err
	}
	return time.Unix(0, int64(ns)), true, nil
}

// DueTimers returns up to limit timers due at or before now, earliest
// first. The scan stops at the first timer not yet due.
func (s *Store) DueTimers(now time.Time, limit int) ([]Timer, error) {
	var out []Timer
	err := s.View(func(tx *Tx) error {
		return tx.scan([]byte(prefixTimer), false, func(k, v []byte) error {
			rest := k[len(prefixTimer):]
			if len(rest) < 9 {
				return fmt.Errorf("bad timer key %q", k)
			}
			due := time.Unix(0, int64(binary.BigEndian.Uint64(rest[:8])))
			if due.After(now) || len(out) >= limit {
				return errStopScan
			}
			kind, id, ok := cutNUL(rest[8:])
			if !ok {
				return fmt.Errorf("bad timer key %q", k)
			}
			out = append(out, Timer{Due: due, Kind: kind, ID: id, Payload: append([]byte(nil), v...)})
			return nil
		})
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return out, err
}

// NextTimer returns when the earliest timer is due.
func (s *Store) NextTimer() (time.Time, bool, error) {
	var due time.Time
	var found bool
	err := s.View(func(tx *Tx) error {
		return tx.scan([]byte(prefixTimer), true, func(k, _ []byte) error {
			rest := k[len(prefixTimer):]
			if len(rest) >= 8 {
				due = time.Unix(0, int64(binary.BigEndian.Uint64(rest[:8])))
				found = true
			}
			return errStopScan
		})
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return due, found, err
}

func cutNUL(b []byte) (string, string, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), string(b[i+1:]), true
		}
	}
	return "", "", false
}

// timerRetry is how long a failed timer waits before it fires again.
const timerRetry = time.Minute

// TimerHandler acts on a due timer, in the transaction that removes it
// (FireTimer): what it changes commits with the timer's removal or not at
// all, so that every timer takes effect exactly once, whichever node
// fires it and however many try. It may schedule the timer again. Like
// every transaction's work it may run more than once before one attempt
// commits (Store.UpdateFrom): whatever leaves the transaction goes in
// OnCommit.
type TimerHandler func(ctx context.Context, tx *Tx, t Timer) error

// FireTimer runs h on t in a transaction that first takes the timer out
// of the store. If the timer is no longer scheduled at t.Due (another
// node fired it, or it was moved or cancelled since DueTimers read it)
// nothing happens and fired is false. Two nodes firing one timer both
// read and remove its record, so the database lets one commit and runs
// the other again, which finds it gone.
func (s *Store) FireTimer(ctx context.Context, t Timer, h TimerHandler) (fired bool, err error) {
	err = s.Update(func(tx *Tx) error {
		fired = false
		taken, err := tx.takeTimer(t)
		if err != nil || !taken {
			return err
		}
		if err := h(ctx, tx, t); err != nil {
			return err
		}
		fired = true
		return nil
	})
	return fired, err
}

// takeTimer removes the timer (t.Kind, t.ID) if it is due at t.Due, and
// reports whether it did.
func (tx *Tx) takeTimer(t Timer) (bool, error) {
	due, found, err := tx.TimerDue(t.Kind, t.ID)
	if err != nil || !found || !due.Equal(t.Due) {
		return false, err
	}
	if err := tx.del(timerKey(due, t.Kind, t.ID)); err != nil {
		return false, err
	}
	return true, tx.del(timerIDKey(t.Kind, t.ID))
}

// RunTimers fires due timers until ctx ends, checking every interval. A
// timer whose kind has no handler is left for a process that has one; a
// timer whose handler fails is retried a minute later; one failing timer
// does not hold up the others. Several nodes may run it on one database:
// each timer fires on one of them (FireTimer), and each takes the due
// timers in an order of its own, so that they seldom reach for the same
// one at once.
func (s *Store) RunTimers(ctx context.Context, every time.Duration, handlers map[string]TimerHandler) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		due, err := s.DueTimers(time.Now(), 256)
		if err != nil {
			s.log.Error("reading due timers", "err", err)
		}
		rand.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
		fired := false
		for _, t := range due {
			if ctx.Err() != nil {
				return
			}
			h := handlers[t.Kind]
			if h == nil {
				continue
			}
			ok, err := s.FireTimer(ctx, t, h)
			fired = fired || ok
			if err != nil {
				// Retry later rather than every tick: a timer that keeps
				// failing must not spin, nor hold up the ones behind it.
				s.log.Error("timer failed; retrying in a minute", "kind", t.Kind, "id", t.ID, "err", err)
				if err := s.Update(func(tx *Tx) error {
					if due, found, err := tx.TimerDue(t.Kind, t.ID); err != nil || !found || !due.Equal(t.Due) {
						return err // fired or moved meanwhile
					}
					r := t
					r.Due = time.Now().Add(timerRetry)
					return tx.ScheduleTimer(r)
				}); err != nil {
					s.log.Error("rescheduling a failed timer", "kind", t.Kind, "id", t.ID, "err", err)
				}
			}
		}
		// What fired may have told someone (a notice queued, a message
		// released): durable before the next round.
		if fired {
			if err := s.Sync(); err != nil {
				s.log.Error("syncing fired timers", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
