package imapsrv

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/mailbox"
)

// trackedBox is the server's view of a mailbox that at least one session
// has selected: the records in UID order and the go-imap tracker that
// queues updates for each session. Both change together, under mu, in the
// store's commit order (onChange runs inside the committing transaction's
// lock), so a session that reads msgs and translates sequence numbers
// through its SessionTracker under mu always sees a consistent pair.
type trackedBox struct {
	key     boxKey
	mu      sync.Mutex
	msgs    []*mailbox.Message
	tracker *imapserver.MailboxTracker
	refs    int
	deleted bool
	// evict drops the box once no session has had it selected for
	// boxLinger (see release). Guarded by Server.boxesMu.
	evict *time.Timer
	// idlers are the wake-up channels of sessions in IDLE (see
	// session.Idle), signalled after every change is queued.
	idlers map[chan struct{}]struct{}
	// keywords are the keywords the mailbox's FLAGS lists, in the order
	// they were first used; kwSeen holds them folded. The list only
	// grows while the box is tracked, so a session knows what it has
	// announced by a length (session.kwKnown).
	keywords []string
	kwSeen   map[string]bool
	// recentUID is the first UID no session has claimed as \Recent,
	// recentStored the one the store has (recent.go); recentOwner is the
	// session new messages are recent to: the latest to SELECT the
	// mailbox read-write, while it has it selected.
	recentUID, recentStored uint32
	recentOwner             *session
	// claimed are the new messages claimed for recentOwner in the
	// transaction that added them, on a store several nodes share
	// (recent.go, claimOnInsert), until onChange hands them over.
	claimed map[uint32]bool
	// highest is the mailbox's HIGHESTMODSEQ, kept by onChange.
	highest uint64
	// orders are the mailbox's sort orders (sortorder.go); replaced
	// counts the records onChange replaced under the same UID, which
	// makes them be built again.
	orders   sortOrders
	replaced uint64
	// gone are the records of the latest messages expunged, by UID, the
	// oldest first in goneOrder: a client not yet told of an expunge
	// still sees the message, and a STORE naming it is answered about it
	// (session.Store). At most goneMax are kept.
	gone      map[uint32]*mailbox.Message
	goneOrder []uint32
}

// goneMax bounds trackedBox.gone: a session is told of expunges at its
// next command, so only an expunge of the last few hundred can still be
// unknown to a client sending a STORE; past the bound, a STORE of an
// older one goes unanswered for that message, as before.
const goneMax = 512

// bury keeps the record of an expunged message in gone. The box's mu
// must be held.
func (b *trackedBox) bury(m *mailbox.Message) {
	if b.gone == nil {
		b.gone = make(map[uint32]*mailbox.Message)
	}
	if len(b.goneOrder) == goneMax {
		delete(b.gone, b.goneOrder[0])
		b.goneOrder = append(b.goneOrder[:0], b.goneOrder[1:]...)
	}
	b.gone[m.UID] = m
	b.goneOrder = append(b.goneOrder, m.UID)
}

// addKeywords adds the keywords among flags that FLAGS does not list yet
// and reports whether there were any. The box's mu must be held.
func (b *trackedBox) addKeywords(flags []string) bool {
	added := false
	for _, f := range flags {
		if strings.HasPrefix(f, "\\") {
			continue // a system flag, always in FLAGS
		}
		k := strings.ToLower(f)
		if b.kwSeen[k] {
			continue
		}
		if b.kwSeen == nil {
			b.kwSeen = make(map[string]bool)
		}
		b.kwSeen[k] = true
		b.keywords = append(b.keywords, f)
		added = true
	}
	return added
}

// wakeIdlers tells every IDLE session that updates are queued. The box's
// mu must be held.
func (b *trackedBox) wakeIdlers() {
	for ch := range b.idlers {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

func (b *trackedBox) find(uid uint32) (int, bool) {
	i := sort.Search(len(b.msgs), func(i int) bool { return b.msgs[i].UID >= uid })
	return i, i < len(b.msgs) && b.msgs[i].UID == uid
}

// open returns the tracked box for a mailbox, creating it from a snapshot
// taken while no transaction commits, and a new session tracker on it.
func (s *Server) open(acct string, id uint32, name string) (*trackedBox, *imapserver.SessionTracker, *mailbox.MailboxInfo, mailbox.BoxFacts, error) {
	key := boxKey{acct, id}
	var box *trackedBox
	var st *imapserver.SessionTracker
	var info *mailbox.MailboxInfo
	var facts mailbox.BoxFacts
	err := s.store.Watch(acct, id, name, func(mb *mailbox.MailboxInfo, msgs []*mailbox.Message, f mailbox.BoxFacts) {
		info, facts = mb, f
		s.boxesMu.Lock()
		defer s.boxesMu.Unlock()
		box = s.boxes[key]
		if box == nil {
			box = &trackedBox{
				key:          key,
				recentUID:    mb.RecentUID,
				recentStored: mb.RecentUID,
				highest:      f.HighestModSeq,
				msgs:         slices.Clone(msgs), // the store's own index

				tracker: imapserver.NewMailboxTracker(uint32(len(msgs))),
			}
			s.boxes[key] = box
		}
		box.refs++
		box.mu.Lock()
		box.addKeywords(f.Keywords)
		facts.Keywords = slices.Clone(box.keywords)
		st = box.tracker.NewSession()
		box.mu.Unlock()
	})
	if err != nil {
		return nil, nil, nil, facts, err
	}
	return box, st, info, facts, nil
}

// boxLinger is how long a tracked box outlives its last session. A
// client that logs in again, or SELECTs the mailbox it had selected (go-imap
// unselects first), then finds the box ready instead of waiting for a copy
// of the mailbox's index: a third of a SELECT of 100,000 messages. The
// price is a pointer per message of each mailbox opened in the last
// minute, kept current by onChange.
const boxLinger = time.Minute

// release drops a session's reference to a tracked box.
func (s *Server) release(box *trackedBox, st *imapserver.SessionTracker) {
	box.mu.Lock()
	st.Close()
	box.mu.Unlock()
	s.boxesMu.Lock()
	defer s.boxesMu.Unlock()
	box.refs--
	if box.refs > 0 || s.boxes[box.key] != box {
		return
	}
	if box.evict != nil {
		box.evict.Reset(boxLinger)
		return
	}
	box.evict = time.AfterFunc(boxLinger, func() {
		s.boxesMu.Lock()
		defer s.boxesMu.Unlock()
		if box.refs == 0 && s.boxes[box.key] == box {
			delete(s.boxes, box.key)
		}
	})
}

// onChange applies a committed change to the tracked box, if any session
// has the mailbox selected.
func (s *Server) onChange(c mailbox.Change) {
	if c.Kind == mailbox.AccountDeleted {
		s.sessions.end(c.Account, s.log)
		return
	}
	s.notifiers.offer(c) // NOTIFY (notify.go)
	s.boxesMu.Lock()
	box := s.boxes[boxKey{c.Account, c.MailboxID}]
	if box != nil && c.Kind == mailbox.MailboxDeleted {
		// The next session to select a mailbox of that ID starts afresh.
		delete(s.boxes, box.key)
	}
	s.boxesMu.Unlock()
	if box == nil {
		return
	}
	box.mu.Lock()
	defer box.mu.Unlock()
	defer box.wakeIdlers()
	box.highest = max(box.highest, c.ModSeq)
	switch c.Kind {
	case mailbox.MessageAdded:
		if box.addKeywords(c.Message.Flags) {
			box.tracker.QueueMailboxFlagsChanged()
		}
		i, ok := box.find(c.Message.UID)
		if ok {
			box.msgs[i] = c.Message
			box.replaced++
			return
		}
		// New to every session: \Recent in the one that owns new
		// messages, if any; else left for the next SELECT to claim.
		s.handRecent(box, c.Message.UID)
		box.msgs = append(box.msgs, nil)
		copy(box.msgs[i+1:], box.msgs[i:])
		box.msgs[i] = c.Message
		box.tracker.QueueNumMessages(uint32(len(box.msgs)))
	case mailbox.MessageFlags:
		i, ok := box.find(c.Message.UID)
		if !ok {
			return
		}
		box.msgs[i] = c.Message
		// A keyword used for the first time reaches every session in
		// FLAGS before the FETCH that shows it (RFC 3501 7.2.6).
		if box.addKeywords(c.Message.Flags) {
			box.tracker.QueueMailboxFlagsChanged()
		}
		source, _ := c.Source.(*imapserver.SessionTracker)
		box.tracker.QueueMessageFlagsModSeq(uint32(i+1), imap.UID(c.Message.UID), imapFlags(c.Message.Flags), c.ModSeq, source)
	case mailbox.MessageExpunged:
		i, ok := box.find(c.Message.UID)
		if !ok {
			return
		}
		box.bury(box.msgs[i])
		copy(box.msgs[i:], box.msgs[i+1:])
		box.msgs[len(box.msgs)-1] = nil
		box.msgs = box.msgs[:len(box.msgs)-1]
		box.tracker.QueueExpungeUID(uint32(i+1), imap.UID(c.Message.UID))
	case mailbox.MailboxDeleted:
		box.deleted = true
		// Sessions that still have the mailbox selected see its messages
		// go, instead of going on showing messages whose bytes are gone
		// (FETCH BODY[] silently returned nothing for them).
		for n := len(box.msgs); n > 0; n-- {
			box.tracker.QueueExpungeUID(uint32(n), imap.UID(box.msgs[n-1].UID))
		}
		box.msgs = nil
	}
}

func imapFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, len(flags))
	for i, f := range flags {
		out[i] = imap.Flag(f)
	}
	return out
}
