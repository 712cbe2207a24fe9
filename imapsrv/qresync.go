package imapsrv

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// QRESYNC (RFC 7162 3.2): a client that knows a mailbox as of a MODSEQ
// learns in one round trip which of its messages were expunged since
// (VANISHED (EARLIER), from the store's expunge log, mailbox.Store.Vanished)
// and which changed (FETCH of every message whose MODSEQ is higher, from
// the tracked box). Once enabled, expunges are reported as VANISHED
// instead of EXPUNGE; imapserver writes them from the UIDs onChange
// queues (MailboxTracker.QueueExpungeUID).

var _ imapserver.SessionQResync = (*session)(nil)

// QResync writes what the QRESYNC parameter of the SELECT or EXAMINE that
// just succeeded asks for (RFC 7162 3.2.5): VANISHED (EARLIER) with the
// known UIDs expunged after the client's MODSEQ, then FETCH (UID FLAGS
// MODSEQ) of each known message changed after it. Nothing when the
// client's UIDVALIDITY is not the mailbox's: its copy is void and it
// must fetch everything.
func (sess *session) QResync(w *imapserver.FetchWriter) error {
	q := sess.resync
	sess.resync = nil
	if q == nil || sess.box == nil {
		return nil
	}
	vanished, err := sess.vanished(q.ModSeq, q.KnownUIDs, q.SeqMatch)
	if err != nil {
		return err
	}
	if err := w.WriteVanishedEarlier(vanished); err != nil {
		return err
	}
	box := sess.box
	box.mu.Lock()
	var targets []target
	for i, m := range box.msgs {
		if m.ModSeq <= q.ModSeq || q.KnownUIDs != nil && !q.KnownUIDs.Contains(imap.UID(m.UID)) {
			continue
		}
		// A message added after the SELECT's snapshot is announced
		// by EXISTS later; the client fetches it as new.
		if cs := sess.tracker.EncodeSeqNum(uint32(i + 1)); cs != 0 {
			targets = append(targets, target{seq: cs, msg: m})
			sess.told(m.ModSeq)
		}
	}
	box.mu.Unlock()
	// A keyword first used after the SELECT's snapshot goes into FLAGS
	// before a FETCH shows it (RFC 9051 7.3.5).
	if err := sess.announceKeywords(); err != nil {
		return err
	}
	return sess.writeFetch(w, targets, &imap.FetchOptions{UID: true, Flags: true, ModSeq: true})
}

// vanished returns the UIDs of set (nil: every UID) expunged after MODSEQ
// since, for VANISHED (EARLIER). It names no message the client still
// sees: a message expunged after the client's view was taken (its
// VANISHED is queued in the session's tracker) is left for that VANISHED,
// which also changes sequence numbers; a client told of it earlier would
// no longer find it there. When the store no longer has every expunge
// after since (beyond its retention), the answer is every UID not
// present, narrowed by the client's seq-match-data if it sent any (RFC
// 7162 3.2.5.2): a superset, which RFC 7162 allows, never a wrong answer.
func (sess *session) vanished(since uint64, set imap.UIDSet, match *imap.SelectQResyncSeqMatch) (imap.UIDSet, error) {
	ranges, exact, err := sess.srv.store.Vanished(sess.acct, sess.mboxID, since)
	if err != nil {
		return nil, fmt.Errorf("reading expunged UIDs: %w", err)
	}
	if len(ranges) == 0 {
		return nil, nil
	}
	box := sess.box
	box.mu.Lock()
	defer box.mu.Unlock()
	// Under box.mu no commit moves a message from box.msgs to the
	// queue: each UID is in one or the other, or gone for the client.
	queued := sess.tracker.QueuedExpunges()
	floor := uint32(0) // every UID up to floor is known to be present or reported
	if match != nil && !exact {
		floor = sess.seqMatchFloor(match)
	}
	var spans []span
	if set == nil {
		spans = []span{{1, math.MaxUint32}}
	} else {
		for _, r := range set {
			lo, hi := staticRange(uint32(r.Start), uint32(r.Stop), math.MaxUint32)
			spans = append(spans, span{lo, hi})
		}
		spans = mergeSpans(spans, math.MaxUint32)
	}
	var out imap.UIDSet
	emit := func(lo, hi uint32) {
		// Cut out the messages the client still sees.
		i := sort.Search(len(box.msgs), func(i int) bool { return box.msgs[i].UID >= lo })
		for ; i < len(box.msgs) && box.msgs[i].UID <= hi; i++ {
			u := box.msgs[i].UID
			if u > lo {
				emitQueued(&out, lo, u-1, queued)
			}
			lo = u + 1
			if lo == 0 { // u was the highest UID
				return
			}
		}
		if lo <= hi {
			emitQueued(&out, lo, hi, queued)
		}
	}
	// Intersect the store's ranges with the asked-for spans; both are
	// ascending and disjoint.
	j := 0
	for _, r := range ranges {
		lo := max(r.Lo, floor+1)
		if floor == math.MaxUint32 || lo > r.Hi {
			continue
		}
		for j < len(spans) && spans[j].hi < lo {
			j++
		}
		for k := j; k < len(spans) && spans[k].lo <= r.Hi; k++ {
			emit(max(lo, spans[k].lo), min(r.Hi, spans[k].hi))
		}
	}
	return out, nil
}

// emitQueued adds lo..hi to out, less the UIDs in queued.
func emitQueued(out *imap.UIDSet, lo, hi uint32, queued []imap.UID) {
	var cut []uint32
	for _, u := range queued {
		if uint32(u) >= lo && uint32(u) <= hi {
			cut = append(cut, uint32(u))
		}
	}
	slices.Sort(cut)
	for _, u := range cut {
		if u > lo {
			out.AddRange(imap.UID(lo), imap.UID(u-1))
		}
		lo = u + 1
	}
	if lo <= hi && lo != 0 {
		out.AddRange(imap.UID(lo), imap.UID(hi))
	}
}

// seqMatchFloor returns the highest UID of the client's seq-match-data
// pairs that is still at the sequence number the client gave it (0 for
// none; box.mu held). If message n has UID u both in the client's old
// view and now, no message below u was expunged in between: UIDs only
// grow, so the n-1 messages below u now are the n-1 the client knew
// (RFC 7162 3.2.5.2).
func (sess *session) seqMatchFloor(match *imap.SelectQResyncSeqMatch) uint32 {
	seqs, _ := match.SeqNums.Nums()
	uids, _ := match.UIDs.Nums()
	var floor uint32
	for n := range min(len(seqs), len(uids)) {
		u := uint32(uids[n])
		if u <= floor {
			continue
		}
		i, ok := sess.box.find(u)
		if ok && sess.tracker.EncodeSeqNum(uint32(i+1)) == seqs[n] {
			floor = u
		}
	}
	return floor
}

// writeFetch writes FETCH responses for targets, through fetchfast.go
// when it can.
func (sess *session) writeFetch(w *imapserver.FetchWriter, targets []target, options *imap.FetchOptions) error {
	if fastFetchable(options) && !sess.srv.slowFetch {
		if done, err := sess.fetchFast(targets, options); done {
			return err
		}
	}
	var recent func(uid uint32) bool
	if options.Flags {
		recent = sess.recentTest()
	}
	if !sess.srv.store.Shared() || len(targets) < 2 || !(needsRaw(options) || options.Envelope || options.BodyStructure != nil) {
		for _, t := range targets {
			if err := sess.fetchOne(w, t, options, recent, nil); err != nil {
				return err
			}
		}
		return nil
	}
	// On a store other nodes share (PostgreSQL), where each read is a
	// round trip, what the messages need from the store is read in
	// batches (fetchBatch); on Badger a read is local, and one at a time
	// keeps no more than one message in memory.
	for len(targets) > 0 {
		n, size := 0, int64(0)
		for n < len(targets) && n < rawBatch && size < rawBatchBytes {
			size += targets[n].msg.Size
			n++
		}
		pre, err := sess.readFetchBatch(targets[:n], options)
		if err != nil {
			return err
		}
		for _, t := range targets[:n] {
			if err := sess.fetchOne(w, t, options, recent, pre); err != nil {
				return err
			}
		}
		targets = targets[n:]
	}
	return nil
}
