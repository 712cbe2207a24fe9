package notifier

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"certmail/kv"

	"certmail/kv/keyspace"
)

// Store layout. Queued notices are keyed by due time, zero-padded so that
// key order is time order: finding what is due is a prefix scan that stops
// at the first entry not yet due, so each round costs what is due, not
// what is queued.
//
//	outbox/due/<unix nanoseconds, 20 digits>/<id>  entry JSON
//	outbox/id/<id>                                 the entry's due key, or "dead"
//	outbox/dead/<id>                               entry JSON of a notice given up on
//	outbox/sent/<id>                               summary of a notice sent (status.go)
const (
	prefixDue  = keyspace.Outbox + "due/"
	prefixID   = keyspace.Outbox + "id/"
	prefixDead = keyspace.Outbox + "dead/"
	deadMarker = "dead"
)

// entry is a queued notice with its delivery history.
type entry struct {
	Notice      Notice    `json:"notice"`
	Enqueued    time.Time `json:"enqueued"`
	Attempts    int       `json:"attempts"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Died        time.Time `json:"died,omitzero"`
	// WaitingForRelay: a mail notice parked because no relay is
	// configured; it has cost no attempt.
	WaitingForRelay bool `json:"waiting_for_relay,omitempty"`
}

func dueKey(due time.Time, id string) []byte {
	// Clamp to what fits the 20 digits and sorts right: no negative
	// numbers, and nothing past year 2262 where UnixNano overflows.
	var ns int64
	switch {
	case due.Before(time.Unix(0, 0)):
		ns = 0
	case due.After(time.Unix(0, math.MaxInt64)):
		ns = math.MaxInt64
	default:
		ns = due.UnixNano()
	}
	return fmt.Appendf(nil, "%s%020d/%s", prefixDue, ns, id)
}

func parseDueKey(key []byte) (due time.Time, id string, err error) {
	rest, ok := strings.CutPrefix(string(key), prefixDue)
	if !ok {
		return time.Time{}, "", fmt.Errorf("outbox key %q: not a due key", key)
	}
	nsText, id, ok := strings.Cut(rest, "/")
	if !ok || len(nsText) != 20 {
		return time.Time{}, "", fmt.Errorf("outbox key %q: malformed", key)
	}
	ns, err := strconv.ParseInt(nsText, 10, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("outbox key %q: %w", key, err)
	}
	return time.Unix(0, ns), id, nil
}

func idKey(id string) []byte   { return []byte(prefixID + id) }
func deadKey(id string) []byte { return []byte(prefixDead + id) }

// Config configures an Outbox. Zero fields take the defaults noted.
type Config struct {
	Relay      *Relay       // for mail notices; nil: mail waits, costing no attempts, until a process with one runs
	Webhooks   []Webhook    // the only URLs webhook notices may go to
	HTTPClient *http.Client // default: 30 s timeout, no redirects

	MaxAttempts  int           // give up after this many failures; default 12
	BackoffBase  time.Duration // wait after the first failure, doubling after each; default 1 min
	BackoffMax   time.Duration // longest wait; default 6 h
	Lease        time.Duration // how long a claimed notice is hidden from other senders; default 10 min
	BatchSize    int           // notices claimed per transaction; default 32
	PollInterval time.Duration // Run's longest sleep; default 1 min

	Logger *slog.Logger // default slog.Default()
}

func (c *Config) setDefaults() {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 12
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Minute
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 6 * time.Hour
	}
	if c.Lease <= 0 {
		c.Lease = 10 * time.Minute
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 32
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout: 30 * time.Second,
			// A redirect would send the signed payload somewhere
			// nobody configured; report it instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
}

// Outbox is the durable queue of notices and the loop that sends them.
type Outbox struct {
	db       kv.RecordStore
	cfg      Config
	webhooks map[string]Webhook
	kick     chan struct{}
	// mu keeps one DeliverDue at a time in this process; leases keep
	// other processes apart.
	mu sync.Mutex
}

// NewOutbox returns an Outbox over db. It checks the relay and webhook
// configuration now, so mistakes show at start-up.
func NewOutbox(db kv.RecordStore, cfg Config) (*Outbox, error) {
	cfg.setDefaults()
	if cfg.Relay != nil {
		if err := cfg.Relay.check(); err != nil {
			return nil, err
		}
	}
	hooks := make(map[string]Webhook, len(cfg.Webhooks))
	for _, h := range cfg.Webhooks {
		if err := h.check(); err != nil {
			return nil, err
		}
		hooks[h.URL] = h
	}
	return &Outbox{db: db, cfg: cfg, webhooks: hooks, kick: make(chan struct{}, 1)}, nil
}

// Enqueue queues n for sending now, inside the caller's transaction kv, so
// that it is sent only if that transaction commits. An empty ID is filled
// in; an ID already queued (or dead) makes this a no-op. Call Kick after
// the commit to send at once rather than at the next poll.
func (o *Outbox) Enqueue(kv kv.Records, n Notice) error {
	return o.EnqueueAt(kv, n, time.Now())
}

// EnqueueAt is Enqueue for a notice not to be sent before due.
func (o *Outbox) EnqueueAt(kv kv.Records, n Notice, due time.Time) error {
	if n.ID == "" {
		id, err := NewNoticeID()
		if err != nil {
			return err
		}
		n.ID = id
	}
	if err := n.validate(); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	switch n.kind() {
	case KindWebhook:
		if _, ok := o.webhooks[n.URL]; !ok {
			return fmt.Errorf("enqueue %s: webhook URL %q is not configured", n.ID, n.URL)
		}
	case KindMail:
		for _, to := range n.To {
			if _, err := parseAddress("to", to); err != nil {
				return fmt.Errorf("enqueue %s: mail is relayed by SMTP, so recipients need full addresses: %w", n.ID, err)
			}
		}
	}
	_, found, err := kv.Get(idKey(n.ID))
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", n.ID, err)
	}
	if found {
		return nil
	}
	if err := putDue(kv, dueKey(due, n.ID), &entry{Notice: n, Enqueued: time.Now().UTC()}); err != nil {
		return fmt.Errorf("enqueue %s: %w", n.ID, err)
	}
	return nil
}

// putDue writes e under key and points its ID at it.
func putDue(kv kv.Records, key []byte, e *entry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := kv.Set(key, data); err != nil {
		return err
	}
	return kv.Set(idKey(e.Notice.ID), key)
}

// Kick wakes Run to send now. It never blocks.
func (o *Outbox) Kick() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Pending counts queued notices, including those being sent, for metrics.
// It reads every queued key, so call it no more often than metrics need.
func Pending(kv kv.Records) (int, error) {
	n := 0
	err := kv.Scan([]byte(prefixDue), func(_, _ []byte) error {
		n++
		return nil
	})
	return n, err
}

// OutboxStats is what metrics show of the outbox.
type OutboxStats struct {
	// Pending counts queued notices, those being sent and those waiting
	// for a relay included; Oldest is when the oldest of them was
	// queued (zero when none is).
	Pending int
	Oldest  time.Time
	// Dead counts the notices given up on.
	Dead int
}

// Stats reads every queued entry (to find the oldest): call it no more
// often than metrics need.
func Stats(kv kv.Records) (OutboxStats, error) {
	var st OutboxStats
	err := kv.Scan([]byte(prefixDue), func(_, value []byte) error {
		st.Pending++
		var e struct {
			Enqueued time.Time `json:"enqueued"`
		}
		if json.Unmarshal(value, &e) == nil && !e.Enqueued.IsZero() && (st.Oldest.IsZero() || e.Enqueued.Before(st.Oldest)) {
			st.Oldest = e.Enqueued
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	err = kv.Scan([]byte(prefixDead), func(_, _ []byte) error {
		st.Dead++
		return nil
	})
	return st, err
}

// DeadLetter is a notice the outbox gave up on.
type DeadLetter struct {
	Notice    Notice
	Enqueued  time.Time
	Died      time.Time
	Attempts  int
	LastError string
}

// DeadLetters lists the notices given up on, by ID.
func DeadLetters(kv kv.Records) ([]DeadLetter, error) {
	var out []DeadLetter
	err := kv.Scan([]byte(prefixDead), func(key, value []byte) error {
		var e entry
		if err := json.Unmarshal(value, &e); err != nil {
			e = entry{
				Notice:    Notice{ID: strings.TrimPrefix(string(key), prefixDead)},
				LastError: fmt.Sprintf("undecodable outbox entry: %v", err),
			}
		}
		out = append(out, DeadLetter{Notice: e.Notice, Enqueued: e.Enqueued, Died: e.Died, Attempts: e.Attempts, LastError: e.LastError})
		return nil
	})
	return out, err
}

// ErrNotDead is returned by Retry for an ID that is not a dead letter.
var ErrNotDead = errors.New("no dead letter with that ID")

// Retry queues a dead letter again, due now, with its attempts reset: for
// an operator who has fixed what made it fail.
func Retry(kv kv.Records, id string, now time.Time) error {
	data, found, err := kv.Get(deadKey(id))
	if err != nil {
		return fmt.Errorf("retry %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("retry %s: %w", id, ErrNotDead)
	}
	var e entry
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("retry %s: %w", id, err)
	}
	e.Attempts, e.Died = 0, time.Time{}
	if err := putDue(kv, dueKey(now, id), &e); err != nil {
		return fmt.Errorf("retry %s: %w", id, err)
	}
	return kv.Delete(deadKey(id))
}
