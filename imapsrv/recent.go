package imapsrv

import (
	"errors"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/mailbox"
)

// \Recent (RFC 3501 2.3.2): a message is recent in exactly one session,
// the first to select its mailbox read-write after it arrived, or the
// one that has it selected when it arrives. The store keeps one number
// per mailbox, the first UID not yet claimed (mailbox.Tx.ClaimRecent);
// the tracked box keeps it current while sessions have the mailbox
// selected (trackedBox.recentUID) and hands new messages to one session
// (trackedBox.recentOwner). Sessions stay IMAP4rev1 until ENABLE
// IMAP4rev2, and only rev1 sessions see \Recent, RECENT responses and
// the counts; RFC 9051 dropped them.

// flagRecent is the \Recent flag, which go-imap v2 keeps internal
// (IMAP4rev2 has none).
const flagRecent imap.Flag = `\Recent`

// rev1 reports whether the session speaks IMAP4rev1 (no ENABLE
// IMAP4rev2), and so is told of \Recent.
func (sess *session) rev1() bool {
	return sess.conn == nil || !sess.conn.EnabledCaps().Has(imap.CapIMAP4rev2)
}

// claimRecent claims the messages that are recent to this session at
// SELECT and returns their UIDs. A read-write SELECT takes what no
// session has claimed, in a transaction that stores the new floor; the
// box learns of the claim in the commit (Tx.OnCommit), so that no message
// arrives between the claim and the box learning of it (onChange runs in
// the commit of the message's transaction, which waits for this one). EXAMINE claims
// nothing (RFC 3501 6.3.2: it must not make messages lose \Recent) but
// sees the unclaimed ones as recent.
func (sess *session) claimRecent(box *trackedBox, info *mailbox.MailboxInfo, readOnly bool) (imap.UIDSet, error) {
	var set imap.UIDSet
	if readOnly {
		box.mu.Lock()
		from := max(box.recentUID, info.RecentUID)
		box.mu.Unlock()
		return recentRange(from, info.UIDNext), nil
	}
	box.mu.Lock()
	if n := len(box.msgs); box.recentUID >= info.UIDNext && (n == 0 || box.msgs[n-1].UID < box.recentUID) {
		// Nothing unclaimed (the box holds every committed message):
		// no transaction, which most SELECTs of a busy mailbox would
		// otherwise cost.
		box.recentOwner = sess
		box.mu.Unlock()
		return set, nil
	}
	box.mu.Unlock()
	err := sess.srv.store.Update(func(tx *mailbox.Tx) error {
		box.mu.Lock()
		floor := box.recentUID
		box.mu.Unlock()
		from, next, err := tx.ClaimRecent(sess.acct, info.ID, floor)
		if err != nil {
			return err
		}
		// The box learns of the claim when it commits, before any
		// later commit is announced to it; an attempt that conflicts
		// and runs again (another node) leaves it as it was.
		set = recentRange(from, next)
		tx.OnCommit(func() {
			box.mu.Lock()
			defer box.mu.Unlock()
			box.recentUID = max(box.recentUID, next)
			box.recentStored = max(box.recentStored, next)
			box.recentOwner = sess
		})
		return nil
	})
	if errors.Is(err, mailbox.ErrDiskFull) {
		// The claim is a write, and a full disk refuses writes; SELECT
		// is a read and must go on (reads are served on a full disk):
		// this session claims nothing, as EXAMINE, and the messages
		// stay \Recent for a later one.
		return sess.claimRecent(box, info, true)
	}
	return set, err
}

// recentRange is the set of UIDs from from up to below next. UIDs start
// at 1 and a mailbox no session claimed from has a RecentUID of 0: from
// 0 with next 1 (an empty mailbox) must give no range, for a range that
// stops at 0 is 1:* in go-imap, and made every later message recent to
// that session as well as to the one it arrived to.
func recentRange(from, next uint32) imap.UIDSet {
	var set imap.UIDSet
	if from = max(from, 1); from < next {
		set.AddRange(imap.UID(from), imap.UID(next-1))
	}
	return set
}

// handRecent makes a new message \Recent in the session that owns the
// box's new messages, if any. On one node that is the claim: the store
// learns of it when the session lets the mailbox go (storeRecentClaims),
// and a SELECT meanwhile takes its floor from the box. With several
// nodes each has its own box and owner, and each handed every new
// message to its own (imaptest on two nodes: "Message UID=n has \Recent
// flag in multiple sessions"), while a SELECT on another node, blind to
// the claims in this node's memory, took them again. There a message is
// handed over only if the transaction that added it claimed it in the
// store (claimOnInsert): a message added through another node is \Recent
// to a session there, or to the next SELECT. The box's mu is held.
func (s *Server) handRecent(box *trackedBox, uid uint32) {
	if s.store.Shared() {
		if !box.claimed[uid] {
			return
		}
		delete(box.claimed, uid)
		box.recentUID = max(box.recentUID, uid+1)
		box.recentStored = max(box.recentStored, uid+1)
		if o := box.recentOwner; o != nil {
			o.addRecent(uid)
		}
		return
	}
	if o := box.recentOwner; o != nil && uid >= box.recentUID {
		box.recentUID = uid + 1
		o.addRecent(uid)
	}
}

// claimNew claims, on a store several nodes share, the new messages of
// the session's box that no session has claimed, when the session owns
// the box's new messages: those another node added while no session
// there owned them (imaptest's copy script, the copying session on one
// node and the one with the mailbox selected on the other: the copies
// were \Recent nowhere). The claim is a transaction, like SELECT's, so
// that a message claimed on another node, with its insert or by a
// SELECT there, is not taken again; it runs only when the box has
// messages past its claims. It runs before the poll that announces them,
// so the RECENT count goes with their EXISTS. A failed claim leaves them
// to the next SELECT.
func (sess *session) claimNew() {
	box := sess.box
	if box == nil || !sess.srv.store.Shared() || !sess.rev1() {
		return
	}
	box.mu.Lock()
	n := len(box.msgs)
	want := box.recentOwner == sess && n > 0 && box.msgs[n-1].UID >= box.recentUID
	box.mu.Unlock()
	if !want {
		return
	}
	err := sess.srv.store.Update(func(tx *mailbox.Tx) error {
		box.mu.Lock()
		floor := box.recentUID
		box.mu.Unlock()
		from, next, err := tx.ClaimRecent(sess.acct, box.key.id, floor)
		if err != nil {
			return err
		}
		set := recentRange(from, next)
		tx.OnCommit(func() {
			box.mu.Lock()
			defer box.mu.Unlock()
			box.recentUID = max(box.recentUID, next)
			box.recentStored = max(box.recentStored, next)
			sess.recentMu.Lock()
			sess.recent.AddSet(set)
			sess.recentMu.Unlock()
		})
		return nil
	})
	if err != nil {
		sess.log.Debug("claiming new messages as \\Recent", "err", err)
	}
}

// claimOnInsert is the AfterInsert hook of a store several nodes share:
// a message added through this node while a session here owns its
// mailbox's new messages is claimed for it in the transaction that adds
// it (the mailbox's RecentUID moves past it), so that no SELECT on any
// node takes it again; onChange then hands it over (handRecent). If the
// owner lets the mailbox go before the commit, the message is claimed by
// no session: \Recent lost for one message, never doubled. A session
// that becomes the owner after the check leaves it to the next SELECT.
func (s *Server) claimOnInsert(tx *mailbox.Tx, acct string, mb *mailbox.MailboxInfo, m *mailbox.Message) error {
	s.boxesMu.Lock()
	box := s.boxes[boxKey{acct, mb.ID}]
	s.boxesMu.Unlock()
	if box == nil {
		return nil
	}
	box.mu.Lock()
	owned := box.recentOwner != nil
	box.mu.Unlock()
	if !owned || m.UID < mb.RecentUID {
		return nil
	}
	// mb is the caller's record, written again if it adds more (a COPY
	// of several messages): it must carry the claim too.
	mb.RecentUID = m.UID + 1
	if err := tx.RaiseRecent(acct, mb.ID, m.UID+1); err != nil {
		return err
	}
	uid := m.UID
	tx.OnCommit(func() {
		box.mu.Lock()
		defer box.mu.Unlock()
		if box.claimed == nil {
			box.claimed = make(map[uint32]bool)
		}
		box.claimed[uid] = true
	})
	return nil
}

// addRecent records a message that arrived while this session owned the
// box's new messages. The box's mu is held.
func (sess *session) addRecent(uid uint32) {
	sess.recentMu.Lock()
	sess.recent.AddNum(imap.UID(uid))
	sess.recentMu.Unlock()
}

// isRecent reports whether a message is \Recent in this session.
func (sess *session) isRecent(uid uint32) bool {
	sess.recentMu.Lock()
	defer sess.recentMu.Unlock()
	return sess.recent.Contains(imap.UID(uid))
}

// recentTest returns, for one command, the test of whether a message is
// shown with \Recent: nil for a rev1 session with none, or a rev2 one.
func (sess *session) recentTest() func(uid uint32) bool {
	sess.recentMu.Lock()
	none := len(sess.recent) == 0
	sess.recentMu.Unlock()
	if none || !sess.rev1() {
		return nil
	}
	return sess.isRecent
}

// withRecent is a message's flags as the session shows them: with
// \Recent first if recent (the test from recentTest, nil for none).
func withRecent(m *mailbox.Message, recent func(uid uint32) bool) []imap.Flag {
	flags := imapFlags(m.Flags)
	if recent != nil && recent(m.UID) {
		flags = append([]imap.Flag{flagRecent}, flags...)
	}
	return flags
}

// recentCount counts the session's recent messages among those in the
// box that the client has been told of: a RECENT count above the
// client's number of messages is an error to it (imaptest: "seq too
// high"), and new messages not yet announced by EXISTS are at the end.
// The box's mu is held.
func (sess *session) recentCount(box *trackedBox) uint32 {
	known := len(box.msgs)
	if st := sess.tracker; st != nil {
		for known > 0 && st.EncodeSeqNum(uint32(known)) == 0 {
			known--
		}
	}
	sess.recentMu.Lock()
	defer sess.recentMu.Unlock()
	var n uint32
	for _, r := range sess.recent {
		lo, _ := box.find(uint32(r.Start))
		hi := len(box.msgs)
		if r.Stop != 0 {
			hi, _ = box.find(uint32(r.Stop) + 1)
		}
		hi = min(hi, known)
		if hi > lo {
			n += uint32(hi - lo)
		}
	}
	return n
}

// reportRecent writes * n RECENT to a rev1 session after a poll when the
// number of its recent messages, or of its messages, changed (RFC 3501
// 7.3.2: the count goes with the EXISTS that announced new ones).
func (sess *session) reportRecent(w *imapserver.UpdateWriter) error {
	box := sess.box
	if box == nil || !sess.rev1() {
		return nil
	}
	box.mu.Lock()
	n, exists := sess.recentCount(box), uint32(len(box.msgs))
	box.mu.Unlock()
	if n == sess.recentReported && exists == sess.existsReported {
		return nil
	}
	sess.recentReported, sess.existsReported = n, exists
	return w.WriteNumRecent(n)
}

// storeRecentClaims stores the floor of messages the box handed to this
// session since SELECT, when the session lets the mailbox go: else they
// would be recent again to the next session to select it once the box is
// dropped.
func (sess *session) storeRecentClaims(box *trackedBox) {
	box.mu.Lock()
	if box.recentOwner == sess {
		box.recentOwner = nil
	}
	uid, stored := box.recentUID, box.recentStored
	box.mu.Unlock()
	if uid <= stored {
		return
	}
	err := sess.srv.store.Update(func(tx *mailbox.Tx) error {
		return tx.RaiseRecent(box.key.acct, box.key.id, uid)
	})
	if err != nil {
		sess.srv.log.Warn("storing \\Recent claims", "user", box.key.acct, "err", err)
		return
	}
	box.mu.Lock()
	box.recentStored = max(box.recentStored, uid)
	box.mu.Unlock()
}

// recentStatus is STATUS (RECENT): the messages the next read-write
// SELECT would claim, counting claims the tracked box holds that the
// store does not have yet.
func (s *Server) recentStatus(acct string, mb *mailbox.MailboxInfo, stored uint32) uint32 {
	s.boxesMu.Lock()
	box := s.boxes[boxKey{acct, mb.ID}]
	s.boxesMu.Unlock()
	if box == nil {
		return stored
	}
	box.mu.Lock()
	defer box.mu.Unlock()
	if box.recentUID <= mb.RecentUID {
		return stored
	}
	i, _ := box.find(box.recentUID)
	return uint32(len(box.msgs) - i)
}
