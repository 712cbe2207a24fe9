package mailbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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

// TimerHandler acts on a due timer. It must cancel or reschedule the timer
// in the same transaction as the state change it makes, so a crash either
// leaves both undone (and the timer fires again) or both done: every timer
// takes effect exactly once.
type TimerHandler func(ctx context.Context, t Timer) error

// RunTimers fires due timers until ctx ends, checking every interval. A
// timer whose kind has no handler, or whose handler fails, is retried at
// the next check; one failing timer does not hold up the others.
func (s *Store) RunTimers(ctx context.Context, every time.Duration, handlers map[string]TimerHandler) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		due, err := s.DueTimers(time.Now(), 256)
		if err != nil {
			s.log.Error("reading due timers", "err", err)
		}
		for _, t := range due {
			if ctx.Err() != nil {
				return
			}
			h := handlers[t.Kind]
			if h == nil {
				continue
			}
			if err := h(ctx, t); err != nil {
				// Retry later rather than every tick: a timer that keeps
				// failing must not spin, nor hold up the ones behind it.
				s.log.Error("timer failed; retrying in a minute", "kind", t.Kind, "id", t.ID, "err", err)
				t.Due = time.Now().Add(timerRetry)
				if err := s.Update(func(tx *Tx) error { return tx.ScheduleTimer(t) }); err != nil {
					s.log.Error("rescheduling a failed timer", "kind", t.Kind, "id", t.ID, "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
