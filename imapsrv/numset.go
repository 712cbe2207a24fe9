package imapsrv

import (
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
		seen := make(map[uint32]bool)
		for _, r := range set {
			start, stop := staticRange(r.Start, r.Stop, max)
			for cs := start; cs <= stop && cs != 0; cs++ {
				ss := sess.tracker.DecodeSeqNum(cs)
				if ss == 0 || int(ss) > len(box.msgs) || seen[cs] {
					continue
				}
				seen[cs] = true
				out = append(out, target{seq: cs, msg: box.msgs[ss-1]})
				if cs == ^uint32(0) {
					break
				}
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	case imap.UIDSet:
		if len(box.msgs) == 0 {
			return nil
		}
		max := box.msgs[len(box.msgs)-1].UID
		seen := make(map[uint32]bool)
		for _, r := range set {
			start, stop := staticRange(uint32(r.Start), uint32(r.Stop), max)
			i := sort.Search(len(box.msgs), func(i int) bool { return box.msgs[i].UID >= start })
			for ; i < len(box.msgs) && box.msgs[i].UID <= stop; i++ {
				m := box.msgs[i]
				if seen[m.UID] {
					continue
				}
				cs := sess.tracker.EncodeSeqNum(uint32(i + 1))
				if cs == 0 {
					// Not yet announced to this client: it may not
					// address it.
					continue
				}
				seen[m.UID] = true
				out = append(out, target{seq: cs, msg: m})
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].msg.UID < out[j].msg.UID })
	}
	return out
}

// clientCountLocked is the number of messages in the client's view.
func (sess *session) clientCountLocked() uint32 {
	for n := uint32(len(sess.box.msgs)); n > 0; n-- {
		if cs := sess.tracker.EncodeSeqNum(n); cs != 0 {
			return cs
		}
	}
	return 0
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
