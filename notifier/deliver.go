package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"certmail/kv"
)

// errStopScan ends a Scan early at the first entry not yet due.
var errStopScan = errors.New("stop scan")

// errNoRelay is a mail notice's lot when no relay is configured: not a
// failure of the notice, so it costs no attempt and logs nothing each
// round (Run says it once at start).
var errNoRelay = errors.New("no SMTP relay configured")

// NoRelayDoc is where the operator is sent when mail waits for a relay.
const NoRelayDoc = "docs/operations.md, \"Relay\""

// claim is a notice leased for sending: it sits under key, due when the
// lease runs out, so that if this process dies it is sent again later.
type claim struct {
	key   []byte
	entry entry
	until time.Time // when the lease runs out and another sender may take it
}

// DeliverDue sends every notice due at now, in due order, and returns how
// many were sent. A failed notice is rescheduled with exponential backoff,
// or kept as a dead letter after MaxAttempts failures or a permanent one.
// The error is only about the store or ctx; delivery failures are logged
// and recorded on the notice.
func (o *Outbox) DeliverDue(ctx context.Context, now time.Time) (sent int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		claims, err := o.claimDue(now)
		if err != nil {
			return sent, err
		}
		for _, c := range claims {
			if err := ctx.Err(); err != nil {
				return sent, err // unsent claims come back when their lease ends
			}
			if !time.Now().Before(c.until) {
				// The batch took longer than the lease: another node
				// may have taken this notice and be sending it. Leave
				// it to whoever claims it next (this node too).
				o.cfg.Logger.Warn("outbox: lease ran out before sending; left for the next claim",
					"notice", c.entry.Notice.ID, "lease", o.cfg.Lease)
				continue
			}
			// A send may not outlive its lease: after it another node
			// may send the same notice.
			sendCtx, cancel := context.WithDeadline(ctx, c.until)
			sendErr := o.send(sendCtx, &c.entry)
			cancel()
			if sendErr != nil && ctx.Err() != nil {
				return sent, ctx.Err() // cut short: not the notice's fault
			}
			if err := o.settle(c, sendErr, now); err != nil {
				return sent, err
			}
			if sendErr == nil {
				sent++
			}
		}
		if len(claims) < o.cfg.BatchSize {
			return sent, nil
		}
	}
}

// claimDue leases up to BatchSize due notices in one transaction: those
// due at now. The lease runs from the clock, or from now if that is
// later: DeliverDue claims batch after batch with its round's now, and a
// lease counted from a round that began more than Lease ago would have
// run out when taken, letting another node send the same notice at once.
func (o *Outbox) claimDue(now time.Time) ([]claim, error) {
	start := time.Now()
	if now.After(start) {
		start = now
	}
	until := start.Add(o.cfg.Lease)
	var claims []claim
	err := o.db.Update(func(kv kv.Records) error {
		claims = claims[:0]
		type due struct{ key, value []byte }
		var found []due
		err := kv.Scan([]byte(prefixDue), func(key, value []byte) error {
			at, _, err := parseDueKey(key)
			if err != nil {
				// Not a key this package wrote; stepping over it
				// keeps one bad key from stopping all notices.
				o.cfg.Logger.Error("outbox: skipping malformed key", "err", err)
				return nil
			}
			if at.After(now) || len(found) == o.cfg.BatchSize {
				return errStopScan
			}
			found = append(found, due{append([]byte(nil), key...), append([]byte(nil), value...)})
			return nil
		})
		if err != nil && !errors.Is(err, errStopScan) {
			return err
		}
		// Write after the scan: a store may not allow writes under an
		// open iterator.
		for _, d := range found {
			var e entry
			if err := json.Unmarshal(d.value, &e); err != nil {
				if err := o.buryUndecodable(kv, d.key, d.value, err); err != nil {
					return err
				}
				continue
			}
			lease := dueKey(until, e.Notice.ID)
			if err := kv.Delete(d.key); err != nil {
				return err
			}
			if err := putDue(kv, lease, &e); err != nil {
				return err
			}
			claims = append(claims, claim{key: lease, entry: e, until: until})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: claiming due notices: %w", err)
	}
	return claims, nil
}

// buryUndecodable moves an entry that cannot be read out of the queue, so
// it neither blocks nor is retried forever; DeadLetters reports it.
func (o *Outbox) buryUndecodable(kv kv.Records, key, value []byte, cause error) error {
	_, id, _ := parseDueKey(key)
	o.cfg.Logger.Error("outbox: undecodable entry moved to dead letters", "key", string(key), "err", cause)
	if err := kv.Set(deadKey(id), value); err != nil {
		return err
	}
	if err := kv.Set(idKey(id), []byte(deadMarker)); err != nil {
		return err
	}
	return kv.Delete(key)
}

// send makes one delivery attempt.
func (o *Outbox) send(ctx context.Context, e *entry) error {
	n := &e.Notice
	switch n.kind() {
	case KindMail:
		if o.cfg.Relay == nil {
			return errNoRelay
		}
		msg := n.Raw
		if msg == nil {
			var err error
			if msg, err = BuildNotice(*n, e.Enqueued); err != nil {
				return permanent(err)
			}
		}
		from, err := parseAddress("from", n.From)
		if err != nil {
			return permanent(err)
		}
		rcpts := make([]string, len(n.To))
		for i, to := range n.To {
			addr, err := parseAddress("to", to)
			if err != nil {
				return permanent(err)
			}
			rcpts[i] = addr.Address
		}
		return o.cfg.Relay.Send(ctx, from.Address, rcpts, msg)
	case KindWebhook:
		hook, ok := o.webhooks[n.URL]
		if !ok {
			return permanent(fmt.Errorf("webhook URL %q is no longer configured", n.URL))
		}
		return hook.post(ctx, o.cfg.HTTPClient, n.ID, n.Payload)
	default:
		return permanent(fmt.Errorf("unknown notice kind %q", n.Kind))
	}
}

// settle records the outcome of one attempt.
func (o *Outbox) settle(c claim, sendErr error, now time.Time) error {
	id := c.entry.Notice.ID
	log := o.cfg.Logger.With("notice", id, "kind", c.entry.Notice.kind())
	return o.db.Update(func(kv kv.Records) error {
		if _, found, err := kv.Get(c.key); err != nil {
			return err
		} else if !found {
			// Our lease ran out and another sender took the notice
			// over; it now owns the outcome.
			log.Warn("outbox: lease lost while sending")
			return nil
		}
		if err := kv.Delete(c.key); err != nil {
			return err
		}
		if sendErr == nil {
			log.Info("outbox: notice sent", "attempts", c.entry.Attempts+1)
			if err := recordSent(kv, &c.entry, now); err != nil {
				return err
			}
			return kv.Delete(idKey(id))
		}
		e := c.entry
		if errors.Is(sendErr, errNoRelay) {
			// Parked until a process with a relay starts (its Run
			// releases it at once); looking again every BackoffMax
			// costs nothing meanwhile.
			e.WaitingForRelay = true
			e.LastError = sendErr.Error()
			log.Debug("outbox: mail notice waits for a relay")
			return putDue(kv, dueKey(now.Add(o.cfg.BackoffMax), id), &e)
		}
		e.Attempts++
		e.LastAttempt = now.UTC()
		e.LastError = sendErr.Error()
		if isPermanent(sendErr) || e.Attempts >= o.cfg.MaxAttempts {
			e.Died = now.UTC()
			log.Error("outbox: giving up on notice", "attempts", e.Attempts, "permanent", isPermanent(sendErr), "err", sendErr)
			data, err := json.Marshal(&e)
			if err != nil {
				return err
			}
			if err := kv.Set(deadKey(id), data); err != nil {
				return err
			}
			return kv.Set(idKey(id), []byte(deadMarker))
		}
		next := now.Add(o.backoff(e.Attempts))
		log.Warn("outbox: notice failed, will retry", "attempts", e.Attempts, "retry_at", next, "err", sendErr)
		return putDue(kv, dueKey(next, id), &e)
	})
}

// releaseWaiting makes every mail notice parked for want of a relay due
// now. It reads the whole queue, once, when a process with a relay starts.
func (o *Outbox) releaseWaiting(now time.Time) (int, error) {
	released := 0
	err := o.db.Update(func(kv kv.Records) error {
		released = 0
		type parked struct {
			key []byte
			e   entry
		}
		var found []parked
		err := kv.Scan([]byte(prefixDue), func(key, value []byte) error {
			var e entry
			if json.Unmarshal(value, &e) == nil && e.WaitingForRelay {
				found = append(found, parked{append([]byte(nil), key...), e})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, p := range found {
			if err := kv.Delete(p.key); err != nil {
				return err
			}
			p.e.WaitingForRelay = false
			if err := putDue(kv, dueKey(now, p.e.Notice.ID), &p.e); err != nil {
				return err
			}
			released++
		}
		return nil
	})
	return released, err
}

// backoff is the wait after the given number of failures: BackoffBase,
// doubling each time, at most BackoffMax.
func (o *Outbox) backoff(attempts int) time.Duration {
	d := o.cfg.BackoffBase
	for i := 1; i < attempts && d < o.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, o.cfg.BackoffMax)
}

// NextDue returns when the earliest queued notice is due; ok is false
// when the queue is empty.
func (o *Outbox) NextDue() (due time.Time, ok bool, err error) {
	err = o.db.View(func(kv kv.Records) error {
		err := kv.Scan([]byte(prefixDue), func(key, _ []byte) error {
			at, _, err := parseDueKey(key)
			if err != nil {
				return nil // claimDue steps over it too
			}
			due, ok = at, true
			return errStopScan
		})
		if errors.Is(err, errStopScan) {
			return nil
		}
		return err
	})
	return due, ok, err
}

// minWait keeps Run from spinning if something due cannot be claimed.
const minWait = 100 * time.Millisecond

// Run sends due notices until ctx ends: at once, after each Kick, when the
// next notice falls due, and at least every PollInterval.
func (o *Outbox) Run(ctx context.Context) error {
	log := o.cfg.Logger
	if o.cfg.Relay == nil {
		// Once, instead of a WARN for every notice at every retry. INFO:
		// it is the quick start's configuration, not a fault.
		log.Info("no relay configured: notices to external addresses wait in the outbox; set [relay] addr (or serve --relay) to send them, see " + NoRelayDoc)
	} else if n, err := o.releaseWaiting(time.Now()); err != nil {
		log.Error("outbox: releasing notices that waited for a relay", "err", err)
	} else if n > 0 {
		log.Info("outbox: sending notices that waited for a relay", "notices", n)
	}
	for {
		if _, err := o.DeliverDue(ctx, time.Now()); err != nil && ctx.Err() == nil {
			log.Error("outbox: delivering", "err", err)
		}
		wait := o.cfg.PollInterval
		if next, ok, err := o.NextDue(); err != nil {
			log.Error("outbox: reading next due time", "err", err)
		} else if ok {
			wait = min(wait, max(time.Until(next), minWait))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-o.kick:
			timer.Stop()
		case <-timer.C:
		}
	}
}
