package notifier

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"certmail/kv"
	"certmail/kv/keyspace"
)

// What the outbox can say of a notice.
const (
	StateQueued  = "queued"            // due now or waiting to retry after a failure
	StateWaiting = "waiting-for-relay" // a mail notice parked: no relay configured
	StateDead    = "dead"              // given up on; Retry queues it again
	StateSent    = "sent"              // handed to the relay or the webhook
)

// prefixSent keeps a summary of each notice sent, for `certmail item
// show` and `certmail outbox list --sent`: what went to whom, when, after
// how many attempts. The message itself is not kept. A notice with a Ref
// is also indexed under it, so that an item's notices are found without
// reading every notice ever sent.
//
//	outbox/sent/<id>        sentRecord JSON
//	outbox/ref/<ref>/<id>   empty
const (
	prefixSent = keyspace.Outbox + "sent/"
	prefixRef  = keyspace.Outbox + "ref/"
)

func sentKey(id string) []byte     { return []byte(prefixSent + id) }
func refPrefix(ref string) []byte  { return []byte(prefixRef + ref + "/") }
func refKey(ref, id string) []byte { return append(refPrefix(ref), id...) }

type sentRecord struct {
	Kind     Kind      `json:"kind"`
	To       []string  `json:"to,omitempty"`
	URL      string    `json:"url,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	Enqueued time.Time `json:"enqueued"`
	Sent     time.Time `json:"sent"`
	Attempts int       `json:"attempts"` // failed ones before it went
}

// recordSent writes the summary of e, sent at now.
func recordSent(kv kv.Records, e *entry, now time.Time) error {
	n := e.Notice
	b, err := json.Marshal(sentRecord{Kind: n.kind(), To: n.To, URL: n.URL, Subject: noticeSubject(&n),
		Enqueued: e.Enqueued, Sent: now.UTC(), Attempts: e.Attempts})
	if err != nil {
		return err
	}
	if err := kv.Set(sentKey(n.ID), b); err != nil {
		return err
	}
	if n.Ref != "" && !strings.Contains(n.Ref, "/") {
		return kv.Set(refKey(n.Ref, n.ID), []byte{})
	}
	return nil
}

// noticeSubject is the subject a notice's mail has: its Subject, or the
// Subject field of a Raw message (a forwarded stub).
func noticeSubject(n *Notice) string {
	if n.Subject != "" || len(n.Raw) == 0 {
		return n.Subject
	}
	head, _, _ := strings.Cut(string(n.Raw[:min(len(n.Raw), 16<<10)]), "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if name, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Subject") {
			return oneLine(strings.TrimSpace(v))
		}
	}
	return ""
}

// Status is what the outbox knows of one notice.
type Status struct {
	ID       string   `json:"id"`
	Kind     Kind     `json:"kind"`
	To       []string `json:"to,omitempty"`
	URL      string   `json:"url,omitempty"`
	Subject  string   `json:"subject,omitempty"`
	State    string   `json:"state"`
	Attempts int      `json:"attempts"` // failed attempts
	// Due is when a queued notice is next tried (for one being sent, when
	// its lease ends).
	Due         time.Time `json:"due,omitzero"`
	Enqueued    time.Time `json:"enqueued,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Died        time.Time `json:"died,omitzero"`
	Sent        time.Time `json:"sent,omitzero"`
}

func statusOf(e *entry, state string) Status {
	n := &e.Notice
	return Status{ID: n.ID, Kind: n.kind(), To: n.To, URL: n.URL, Subject: noticeSubject(n), State: state,
		Attempts: e.Attempts, Enqueued: e.Enqueued, LastAttempt: e.LastAttempt, LastError: e.LastError, Died: e.Died}
}

// ListOptions choose what List returns.
type ListOptions struct {
	// Ref, if set, keeps only the notices about it (Notice.Ref); sent
	// ones are found through their index.
	Ref string
	// Match, if set, keeps only the notices whose ID it accepts (with
	// Ref: also those queued without a Ref that it accepts).
	Match func(id string) bool
	// Sent includes the notices already sent.
	Sent bool
}

// List returns the notices of the outbox: queued (by due time), then dead
// letters, then, with o.Sent, those sent (both by ID). An entry that
// cannot be decoded is listed with the reason as its error.
func List(kv kv.Records, o ListOptions) ([]Status, error) {
	match := o.Match
	if match == nil {
		match = func(string) bool { return o.Ref == "" }
	}
	keep := func(n *Notice) bool { return (o.Ref != "" && n.Ref == o.Ref) || match(n.ID) }
	var out []Status
	err := kv.Scan([]byte(prefixDue), func(key, value []byte) error {
		due, id, err := parseDueKey(key)
		if err != nil {
			return nil
		}
		var e entry
		if err := json.Unmarshal(value, &e); err != nil {
			if match(id) {
				out = append(out, Status{ID: id, State: StateQueued, Due: due, LastError: fmt.Sprintf("undecodable outbox entry: %v", err)})
			}
			return nil
		}
		if !keep(&e.Notice) {
			return nil
		}
		st := statusOf(&e, StateQueued)
		if e.WaitingForRelay {
			st.State = StateWaiting
		}
		st.Due = due
		out = append(out, st)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the outbox: %w", err)
	}
	dead, err := DeadLetters(kv)
	if err != nil {
		return nil, fmt.Errorf("listing dead letters: %w", err)
	}
	for _, d := range dead {
		if keep(&d.Notice) {
			e := entry{Notice: d.Notice, Enqueued: d.Enqueued, Died: d.Died, Attempts: d.Attempts, LastError: d.LastError}
			out = append(out, statusOf(&e, StateDead))
		}
	}
	if !o.Sent {
		return out, nil
	}
	sent := func(id string, value []byte) {
		var r sentRecord
		if err := json.Unmarshal(value, &r); err != nil {
			out = append(out, Status{ID: id, State: StateSent, LastError: fmt.Sprintf("undecodable sent record: %v", err)})
			return
		}
		out = append(out, Status{ID: id, Kind: r.Kind, To: r.To, URL: r.URL, Subject: r.Subject, State: StateSent,
			Attempts: r.Attempts, Enqueued: r.Enqueued, Sent: r.Sent})
	}
	if o.Ref != "" {
		var ids []string
		err = kv.Scan(refPrefix(o.Ref), func(key, _ []byte) error {
			ids = append(ids, strings.TrimPrefix(string(key), string(refPrefix(o.Ref))))
			return nil
		})
		for _, id := range ids {
			if err != nil {
				break
			}
			var v []byte
			var found bool
			if v, found, err = kv.Get(sentKey(id)); found {
				sent(id, v)
			}
		}
	} else {
		err = kv.Scan([]byte(prefixSent), func(key, value []byte) error {
			if id := strings.TrimPrefix(string(key), prefixSent); match(id) {
				sent(id, value)
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("listing sent notices: %w", err)
	}
	return out, nil
}

// RetryDead queues every dead letter again, due now (Retry for each), and
// returns their IDs.
func RetryDead(kv kv.Records, now time.Time) ([]string, error) {
	dead, err := DeadLetters(kv)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, d := range dead {
		if err := Retry(kv, d.Notice.ID, now); err != nil {
			return ids, err
		}
		ids = append(ids, d.Notice.ID)
	}
	return ids, nil
}
