package imapsrv

import (
	"cmp"
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"

	"certmail/mailbox"
)

// target is a message addressed by a command, with its sequence number
// in the client's view.
type target struct {
	seq uint32
	msg *mailbox.Message
}

// resolve turns a sequence or UID set into the messages it names, in
// ascending order, translating sequence numbers between the client's view
// and the current state through the session tracker. It locks the box.
func (sess *session) resolve(numSet imap.NumSet) []target {
	box := sess.box
	box.mu.Lock()
	defer box.mu.Unlock()
	return sess.resolveLocked(numSet)
}

func (sess *session) resolveLocked(numSet imap.NumSet) []target {
	box := sess.box
	if imap.IsSearchRes(numSet) {
		numSet = sess.searchRes
	}
	var out []target
	switch set := numSet.(type) {
	case imap.SeqSet:
		max := sess.clientCountLocked()
		spans := make([]span, 0, len(set))
		for _, r := range set {
			start, stop := staticRange(r.Start, r.Stop, max)
			spans = append(spans, span{start, stop})
		}
		for _, sp := range mergeSpans(spans, max) {
			out = slices.Grow(out, int(sp.hi-sp.lo+1))
			for cs := sp.lo; ; cs++ {
				if ss := sess.tracker.DecodeSeqNum(cs); ss != 0 && int(ss) <= len(box.msgs) {
					out = append(out, target{seq: cs, msg: box.msgs[ss-1]})
				}
				if cs == sp.hi {
					break
				}
			}
		}
	case imap.UIDSet:
		if len(box.msgs) == 0 {
			return nil
		}
		max := box.msgs[len(box.msgs)-1].UID
		spans := make([]span, 0, len(set))
		for _, r := range set {
			start, stop := staticRange(uint32(r.Start), uint32(r.Stop), max)
			spans = append(spans, span{start, stop})
		}
		for _, sp := range mergeSpans(spans, max) {
			i := sort.Search(len(box.msgs), func(i int) bool { return box.msgs[i].UID >= sp.lo })
			for ; i < len(box.msgs) && box.msgs[i].UID <= sp.hi; i++ {
				cs := sess.tracker.EncodeSeqNum(uint32(i + 1))
				if cs == 0 {
					// Not yet announced to this client: it may not
					// address it.
					continue
				}
				out = append(out, target{seq: cs, msg: box.msgs[i]})
			}
		}
	}
	return out
}

// goneLocked returns the messages numSet names that the client still
// sees but that are expunged, their expunge queued for the session and
// not yet written, with their last records (trackedBox.gone), in no
// particular order. resolve leaves them out: a FETCH of one has nothing
// left to read. The box's mu must be held.
func (sess *session) goneLocked(numSet imap.NumSet) []target {
	box := sess.box
	queued := sess.tracker.QueuedExpungeSeqNums()
	if len(queued) == 0 || len(box.gone) == 0 {
		return nil
	}
	if imap.IsSearchRes(numSet) {
		numSet = sess.searchRes
	}
	var out []target
	switch set := numSet.(type) {
	case imap.SeqSet:
		max := sess.clientCountLocked()
		spans := make([]span, len(set))
		for i, r := range set {
			spans[i].lo, spans[i].hi = staticRange(r.Start, r.Stop, max)
		}
		for seq, uid := range queued {
			if m := box.gone[uint32(uid)]; m != nil && inSpans(spans, seq) {
				out = append(out, target{seq: seq, msg: m})
			}
		}
	case imap.UIDSet:
		// "*" is the highest UID the client knows, which may be one of
		// these.
		var top uint32
		if n := len(box.msgs); n > 0 {
			top = box.msgs[n-1].UID
		}
		for _, uid := range queued {
			top = max(top, uint32(uid))
		}
		spans := make([]span, len(set))
		for i, r := range set {
			spans[i].lo, spans[i].hi = staticRange(uint32(r.Start), uint32(r.Stop), top)
		}
		for seq, uid := range queued {
			if m := box.gone[uint32(uid)]; m != nil && inSpans(spans, uint32(uid)) {
				out = append(out, target{seq: seq, msg: m})
			}
		}
	}
	return out
}

// inSpans reports whether n is in one of spans (made by staticRange).
func inSpans(spans []span, n uint32) bool {
	for _, sp := range spans {
		if sp.lo <= n && n <= sp.hi {
			return true
		}
	}
	return false
}

// span is a range of numbers, both ends included.
type span struct{ lo, hi uint32 }

// mergeSpans clamps spans to 1..max, sorts them and merges those that
// overlap or touch, so that a set is walked once, in ascending order,
// without remembering what was seen (a map of 100,000 entries for
// UID FETCH 1:* in a large mailbox) or sorting the result, and without
// walking numbers past max ("1:4000000000").
func mergeSpans(spans []span, top uint32) []span {
	out := spans[:0]
	for _, sp := range spans {
		if sp.lo == 0 {
			sp.lo = 1
		}
		sp.hi = min(sp.hi, top)
		if sp.lo <= sp.hi {
			out = append(out, sp)
		}
	}
	slices.SortFunc(out, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	merged := out[:0]
	for _, sp := range out {
		if n := len(merged); n > 0 && uint64(sp.lo) <= uint64(merged[n-1].hi)+1 {
			merged[n-1].hi = max(merged[n-1].hi, sp.hi)
			continue
		}
		merged = append(merged, sp)
	}
	return merged
}

// clientCountLocked is the number of messages in the client's view,
// those whose expunge it has not been told of included: "*" is the last
// of them (RFC 9051 9, seq-number), not the last still in the mailbox.
// The box's mu must be held (it orders the tracker's updates).
func (sess *session) clientCountLocked() uint32 {
	return sess.tracker.ClientNumMessages()
}

// staticRange replaces "*" (zero) by max and orders the bounds.
func staticRange(start, stop, max uint32) (uint32, uint32) {
	if start == 0 {
		start = max
	}
	if stop == 0 {
		stop = max
	}
	if start > stop {
		start, stop = stop, start
	}
	return start, stop
}

func uids(ts []target) []uint32 {
	out := make([]uint32, len(ts))
	for i, t := range ts {
		out[i] = t.msg.UID
	}
	return out
}
