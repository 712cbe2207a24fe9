package certified

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"certmail/notifier"
	"certmail/receipts"
	"certmail/receipts/evidence"

	"certmail/kv"
)

// Report is everything the store knows of one item, for an operator
// asking what happened to it (`certmail item show`): its record, its
// history as the evidence log holds it (operator views and forwards
// included), the CODs handed in and refused, and the notices about it
// with their delivery state.
type Report struct {
	Item *Item `json:"item"`
	// Events are the item's evidence records in chain order.
	Events []ReportEvent `json:"events"`
	// Refused are CODs or refusals handed in and not accepted.
	Refused []Attempt `json:"refused_cods"`
	// Notices are the outbox's notices about the item: queued, dead or
	// sent.
	Notices []notifier.Status `json:"notices"`
}

// ReportEvent is one evidence record as an operator reads it.
type ReportEvent struct {
	Seq  uint64             `json:"seq"`
	Time time.Time          `json:"time"`
	Type evidence.EventType `json:"type"`
	Data evidence.EventData `json:"data"`
	Leaf uint64             `json:"leaf_index"`
}

// NoticeOfItem reports whether the outbox notice id is about label: every
// notice certified mail queues names its item's label in its ID
// (cm-<event>-<label>, cm-receipt-<label>, cm-stub-<label>-<addr>,
// cm-<event>-<label>-w<n> for webhooks).
func NoticeOfItem(id, label string) bool {
	return receipts.ValidLabel(label) && strings.Contains(id, label)
}

// ItemReport reads label's Report from kv.
func ItemReport(kv kv.Records, label string) (*Report, error) {
	it, err := GetItem(kv, label)
	if err != nil {
		return nil, err
	}
	r := &Report{Item: it, Events: []ReportEvent{}}
	entries, err := evidence.Records(kv, label)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		rec, err := e.Record()
		if err != nil {
			return nil, fmt.Errorf("item %s: %w", label, err)
		}
		r.Events = append(r.Events, ReportEvent{Seq: rec.Seq, Time: rec.Time, Type: rec.Type, Data: rec.Data, Leaf: e.Index})
	}
	if r.Refused, err = Attempts(kv, label); err != nil {
		return nil, fmt.Errorf("item %s: refused CODs: %w", label, err)
	}
	// By Ref; the IDs also find what was queued before notices had one.
	r.Notices, err = notifier.List(kv, notifier.ListOptions{Ref: label, Sent: true, Match: func(id string) bool { return NoticeOfItem(id, label) }})
	if err != nil {
		return nil, fmt.Errorf("item %s: %w", label, err)
	}
	return r, nil
}

// ItemFilter chooses items for ListFiltered; empty fields match all.
type ItemFilter struct {
	State     string `json:"state,omitempty"`
	Recipient string `json:"recipient,omitempty"` // the recipient or a holder
	Sender    string `json:"sender,omitempty"`    // case-insensitive
}

func (f ItemFilter) match(it *Item) bool {
	return (f.State == "" || it.State == f.State) &&
		(f.Recipient == "" || it.Recipient == f.Recipient || it.IsHolder(f.Recipient)) &&
		(f.Sender == "" || strings.EqualFold(it.Sender, f.Sender))
}

// ListFiltered returns the items f matches, oldest posted first.
func ListFiltered(kv kv.Records, f ItemFilter) ([]*Item, error) {
	var out []*Item
	err := ListItems(kv, func(it *Item) error {
		if f.match(it) {
			out = append(out, it)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing items: %w", err)
	}
	slices.SortStableFunc(out, func(a, b *Item) int { return a.Posted.Compare(b.Posted) })
	return out, nil
}
