package imapsrv

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 section 4): a SEARCH or SORT
// with RETURN (UPDATE) leaves a context that the session keeps current,
// telling the client of each change to its result by an unsolicited
// ESEARCH ADDTO or REMOVEFROM, until CANCELUPDATE or the mailbox is
// closed.
//
// A context holds its result, in its order, with each message's record
// and sort keys. After every poll of the mailbox's updates, the messages
// whose MODSEQ rose since the context was last brought up to date (new
// ones, changed flags) are matched again, and only those: a change costs
// a scan of the index's MODSEQs and a match per changed message, not a
// new search. An expunged message leaves the result just before its
// EXPUNGE is written (the tracker's expunge hook), so that its sequence
// number is still valid (RFC 5267 section 4.3.4); an added one is told
// after the EXISTS that gave it its number (4.3.3).
//
// Nothing here looks at more than a SEARCH or SORT would: a certified
// item's stub matches and sorts by its own record and headers.

var _ imapserver.SessionContext = (*session)(nil)

// maxContexts bounds the updating contexts of a session; RFC 5267
// section 4.3.1 asks for at least one, and has the server refuse more
// with NOUPDATE. Each holds a record pointer per message of its result.
const maxContexts = 8

type searchContext struct {
	tag      string
	uid      bool // UID SEARCH / UID SORT: numbers are UIDs
	criteria imap.SearchCriteria
	// sort is nil for a SEARCH, whose result is in mailbox order and
	// whose positions are 0.
	sort  []imapserver.SortCriterion
	items []sortItem
	// seen is the mailbox's HIGHESTMODSEQ the result is current to.
	seen uint64
	// pending are messages changed since seen that the client has not
	// been told of yet (an EXISTS still to come).
	pending []uint32
}

// compare orders a context's result: by its sort criteria, and then (for
// SEARCH, only) in mailbox order, which is UID order (RFC 5256 section 3:
// REVERSE does not turn the tie-break around).
func (ctx *searchContext) compare(a, b *sortItem) int {
	for _, c := range ctx.sort {
		if r := compareBy(c.Key, a, b); r != 0 {
			if c.Reverse {
				return -r
			}
			return r
		}
	}
	return cmp.Compare(a.msg.UID, b.msg.UID)
}

// index returns the position of uid in the result, or -1.
func (ctx *searchContext) index(uid uint32) int {
	if ctx.sort == nil {
		i, ok := slices.BinarySearchFunc(ctx.items, uid, func(it sortItem, u uint32) int { return cmp.Compare(it.msg.UID, u) })
		if ok {
			return i
		}
		return -1
	}
	return slices.IndexFunc(ctx.items, func(it sortItem) bool { return it.msg.UID == uid })
}

// contextTagInUse answers a searching command with UPDATE whose tag
// already names a context: BAD (RFC 5267 section 4.3).
func (sess *session) checkContextTag(options *imap.SearchOptions) error {
	if options == nil || !options.ReturnUpdate {
		return nil
	}
	tag := sess.conn.Tag()
	for _, ctx := range sess.contexts {
		if ctx.tag == tag {
			return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
				Text: fmt.Sprintf("tag %q already names an updating context", tag)}
		}
	}
	return nil
}

// addContext keeps the result of a searching command with RETURN
// (UPDATE), items in the result's order, current to the mailbox's
// HIGHESTMODSEQ seen.
func (sess *session) addContext(kind imapserver.NumKind, criteria *imap.SearchCriteria, sort []imapserver.SortCriterion, items []sortItem, seen uint64) error {
	tag := sess.conn.Tag()
	if len(sess.contexts) >= maxContexts {
		return sess.conn.WriteNoUpdate(tag, fmt.Sprintf("Too many updating contexts (%d): CANCELUPDATE one", maxContexts))
	}
	// Message numbers and $ name the messages they named when the search
	// ran: a later expunge renumbers messages, it does not change which
	// ones the search is about (Dovecot does the same).
	box := sess.box
	box.mu.Lock()
	maxSeq := sess.clientCountLocked()
	uidOf := make([]uint32, maxSeq+1)
	for i, m := range box.msgs {
		if cs := sess.tracker.EncodeSeqNum(uint32(i + 1)); cs != 0 && cs <= maxSeq {
			uidOf[cs] = m.UID
		}
	}
	box.mu.Unlock()
	sess.contexts = append(sess.contexts, &searchContext{
		tag:      tag,
		uid:      kind == imapserver.NumKindUID,
		criteria: sess.seqsAsUIDs(*criteria, uidOf),
		sort:     sort,
		items:    slices.Clone(items),
		seen:     seen,
	})
	return nil
}

// CancelUpdate ends the updates of the contexts named (RFC 5267 section
// 4.3.5); a tag that names none is BAD, as on Dovecot.
func (sess *session) CancelUpdate(tags []string) error {
	for _, tag := range tags {
		i := slices.IndexFunc(sess.contexts, func(c *searchContext) bool { return c.tag == tag })
		if i < 0 {
			return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
				Text: fmt.Sprintf("no updating context has the tag %q", tag)}
		}
		sess.contexts = slices.Delete(sess.contexts, i, i+1)
	}
	return nil
}

// contextExpunge takes a message out of every result that has it, just
// before its EXPUNGE (or VANISHED) is written: seq is its number as the
// client knows it then.
func (sess *session) contextExpunge(w *imapserver.UpdateWriter, seq uint32, uid imap.UID) error {
	for _, ctx := range sess.contexts {
		i := ctx.index(uint32(uid))
		if i < 0 {
			continue
		}
		ctx.items = slices.Delete(ctx.items, i, i+1)
		num := seq
		if ctx.uid {
			num = uint32(uid)
		}
		pos := uint32(0)
		if ctx.sort != nil {
			pos = uint32(i + 1)
		}
		if err := w.WriteSearchUpdate(ctx.tag, ctx.uid, true, []imapserver.SearchUpdatePair{{Position: pos, Nums: []uint32{num}}}); err != nil {
			return err
		}
	}
	return nil
}

// updateContexts brings every context up to date with what changed since
// it last was, and tells the client.
func (sess *session) updateContexts(w *imapserver.UpdateWriter) error {
	for _, ctx := range sess.contexts {
		if err := sess.updateContext(w, ctx); err != nil {
			return fmt.Errorf("updating the context %q: %w", ctx.tag, err)
		}
	}
	return nil
}

func (sess *session) updateContext(w *imapserver.UpdateWriter, ctx *searchContext) error {
	box := sess.box
	var cands []target
	var pending []uint32
	box.mu.Lock()
	highest := box.highest
	if highest <= ctx.seen && len(ctx.pending) == 0 {
		box.mu.Unlock()
		return nil
	}
	maxSeq := sess.clientCountLocked()
	var maxUID uint32
	if n := len(box.msgs); n > 0 {
		maxUID = box.msgs[n-1].UID
	}
	consider := func(i int) {
		m := box.msgs[i]
		if cs := sess.tracker.EncodeSeqNum(uint32(i + 1)); cs != 0 {
			cands = append(cands, target{seq: cs, msg: m})
		} else {
			pending = append(pending, m.UID) // told later, by an EXISTS
		}
	}
	for _, uid := range ctx.pending {
		if i, ok := box.find(uid); ok && box.msgs[i].ModSeq <= ctx.seen {
			consider(i)
		}
	}
	if highest > ctx.seen {
		for i, m := range box.msgs {
			if m.ModSeq > ctx.seen {
				consider(i)
			}
		}
	}
	box.mu.Unlock()
	ctx.seen, ctx.pending = highest, pending
	if len(cands) == 0 {
		return nil
	}

	c := sess.staticCriteria(ctx.criteria, maxSeq, maxUID)
	run := &searchRun{sess: sess, watch: sess.watchCommand(sess.srv.opts.Limits.SearchTimeout)}
	var added []sortItem
	var removed []target
	for _, t := range cands {
		ok, err := sess.matchOne(run, t, &c)
		if err != nil {
			return err
		}
		in := ctx.index(t.msg.UID) >= 0
		switch {
		case ok && !in:
			added = append(added, sortItem{target: t})
		case !ok && in:
			removed = append(removed, t)
		}
	}
	if err := sess.contextRemove(w, ctx, removed); err != nil {
		return err
	}
	return sess.contextAdd(w, ctx, added)
}

func (ctx *searchContext) num(t target) uint32 {
	if ctx.uid {
		return t.msg.UID
	}
	return t.seq
}

// contextRemove takes messages out of a result: for a SEARCH in one
// REMOVEFROM at position 0, in mailbox order; for a SORT one pair per
// message from the last position to the first, so that each position is
// valid as the client applies the pairs in order (RFC 5267 4.3.2).
func (sess *session) contextRemove(w *imapserver.UpdateWriter, ctx *searchContext, removed []target) error {
	if len(removed) == 0 {
		return nil
	}
	var pairs []imapserver.SearchUpdatePair
	if ctx.sort == nil {
		slices.SortFunc(removed, func(a, b target) int { return cmp.Compare(a.msg.UID, b.msg.UID) })
		nums := make([]uint32, len(removed))
		for i, t := range removed {
			nums[i] = ctx.num(t)
			j := ctx.index(t.msg.UID)
			ctx.items = slices.Delete(ctx.items, j, j+1)
		}
		pairs = []imapserver.SearchUpdatePair{{Nums: nums}}
	} else {
		type at struct {
			i int
			t target
		}
		var where []at
		for _, t := range removed {
			where = append(where, at{ctx.index(t.msg.UID), t})
		}
		slices.SortFunc(where, func(a, b at) int { return cmp.Compare(b.i, a.i) })
		for _, x := range where {
			pairs = append(pairs, imapserver.SearchUpdatePair{Position: uint32(x.i + 1), Nums: []uint32{ctx.num(x.t)}})
			ctx.items = slices.Delete(ctx.items, x.i, x.i+1)
		}
	}
	return w.WriteSearchUpdate(ctx.tag, ctx.uid, true, pairs)
}

// contextAdd puts messages into a result: for a SEARCH in one ADDTO at
// position 0, in mailbox order; for a SORT in sort order, each at the
// position it takes, consecutive ones in one pair (RFC 5267 4.3.3).
func (sess *session) contextAdd(w *imapserver.UpdateWriter, ctx *searchContext, added []sortItem) error {
	if len(added) == 0 {
		return nil
	}
	if ctx.sort != nil && needSortKeys(ctx.sort) {
		if err := sess.loadSortKeys(added); err != nil {
			return err
		}
	}
	slices.SortFunc(added, func(a, b sortItem) int { return ctx.compare(&a, &b) })
	var pairs []imapserver.SearchUpdatePair
	for _, it := range added {
		i, _ := slices.BinarySearchFunc(ctx.items, it, func(x, y sortItem) int { return ctx.compare(&x, &y) })
		ctx.items = slices.Insert(ctx.items, i, it)
		num := ctx.num(it.target)
		if ctx.sort == nil {
			if len(pairs) == 0 {
				pairs = append(pairs, imapserver.SearchUpdatePair{})
			}
			pairs[0].Nums = append(pairs[0].Nums, num)
			continue
		}
		pos := uint32(i + 1)
		if n := len(pairs); n > 0 && pairs[n-1].Position+uint32(len(pairs[n-1].Nums)) == pos {
			pairs[n-1].Nums = append(pairs[n-1].Nums, num)
		} else {
			pairs = append(pairs, imapserver.SearchUpdatePair{Position: pos, Nums: []uint32{num}})
		}
	}
	return w.WriteSearchUpdate(ctx.tag, ctx.uid, false, pairs)
}

// needSortKeys reports whether sorting by criteria reads sort keys:
// ARRIVAL and SIZE are in the records.
func needSortKeys(criteria []imapserver.SortCriterion) bool {
	for _, c := range criteria {
		if c.Key != imapserver.SortKeyArrival && c.Key != imapserver.SortKeySize {
			return true
		}
	}
	return false
}

// seqsAsUIDs rewrites the message number sets of a search program, and $,
// as the UIDs they name now; uidOf maps the client's message numbers to
// UIDs (0: expunged, not yet told).
func (sess *session) seqsAsUIDs(c imap.SearchCriteria, uidOf []uint32) imap.SearchCriteria {
	maxSeq := uint32(len(uidOf) - 1)
	var uids []imap.UIDSet
	for _, s := range c.SeqNum {
		if imap.IsSearchRes(s) {
			uids = append(uids, slices.Clone(sess.searchRes))
			continue
		}
		var set imap.UIDSet // nil when empty: matches nothing
		for _, r := range s {
			a, b := staticRange(r.Start, r.Stop, maxSeq)
			for q := a; q <= min(b, maxSeq) && q > 0; q++ {
				if u := uidOf[q]; u != 0 {
					set.AddNum(imap.UID(u))
				}
			}
		}
		uids = append(uids, set)
	}
	for _, s := range c.UID {
		if imap.IsSearchRes(s) {
			s = slices.Clone(sess.searchRes)
		}
		uids = append(uids, s)
	}
	c.SeqNum, c.UID = nil, uids
	c.Not = slices.Clone(c.Not)
	for i := range c.Not {
		c.Not[i] = sess.seqsAsUIDs(c.Not[i], uidOf)
	}
	c.Or = slices.Clone(c.Or)
	for i := range c.Or {
		c.Or[i][0] = sess.seqsAsUIDs(c.Or[i][0], uidOf)
		c.Or[i][1] = sess.seqsAsUIDs(c.Or[i][1], uidOf)
	}
	return c
}
