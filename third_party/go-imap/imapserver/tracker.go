package imapserver

import (
	"fmt"
	"sync"

	"github.com/emersion/go-imap/v2"
)

// MailboxTracker tracks the state of a mailbox.
//
// A mailbox can have multiple sessions listening for updates. Each session has
// its own view of the mailbox, because IMAP clients asynchronously receive
// mailbox updates.
type MailboxTracker struct {
	mutex       sync.Mutex
	numMessages uint32
	sessions    map[*SessionTracker]struct{}
}

// NewMailboxTracker creates a new mailbox tracker.
func NewMailboxTracker(numMessages uint32) *MailboxTracker {
	return &MailboxTracker{
		numMessages: numMessages,
		sessions:    make(map[*SessionTracker]struct{}),
	}
}

// NewSession creates a new session tracker for the mailbox.
//
// The caller must call SessionTracker.Close once they are done with the
// session.
func (t *MailboxTracker) NewSession() *SessionTracker {
	st := &SessionTracker{mailbox: t}
	t.mutex.Lock()
	t.sessions[st] = struct{}{}
	t.mutex.Unlock()
	return st
}

func (t *MailboxTracker) queueUpdate(update *trackerUpdate, source *SessionTracker) {
	t.mutex.Lock()
	defer t.mutex.Unlock()

	if update.expunge != 0 && update.expunge > t.numMessages {
		panic(fmt.Errorf("imapserver: expunge sequence number (%v) out of range (%v messages in mailbox)", update.expunge, t.numMessages))
	}
	if update.numMessages != 0 && update.numMessages < t.numMessages {
		panic(fmt.Errorf("imapserver: cannot decrease mailbox number of messages from %v to %v", t.numMessages, update.numMessages))
	}

	// certmail patch: the count before the update, for PollDeferringNew.
	update.before = t.numMessages
	for st := range t.sessions {
		if source != nil && st == source {
			continue
		}
		st.queueUpdate(update)
	}

	switch {
	case update.expunge != 0:
		t.numMessages--
	case update.numMessages != 0:
		t.numMessages = update.numMessages
	}
}

// QueueExpunge queues a new EXPUNGE update.
func (t *MailboxTracker) QueueExpunge(seqNum uint32) {
	if seqNum == 0 {
		panic("imapserver: invalid expunge message sequence number")
	}
	t.queueUpdate(&trackerUpdate{expunge: seqNum}, nil)
}

// QueueExpungeUID is QueueExpunge with the message's UID, so that a
// session that enabled QRESYNC is told VANISHED uid instead of EXPUNGE
// (certmail patch, RFC 7162 3.2.10). A session that enabled QRESYNC is
// told of an expunge queued without its UID by EXPUNGE.
func (t *MailboxTracker) QueueExpungeUID(seqNum uint32, uid imap.UID) {
	if seqNum == 0 {
		panic("imapserver: invalid expunge message sequence number")
	}
	t.queueUpdate(&trackerUpdate{expunge: seqNum, expungeUID: uid}, nil)
}

// QueueNumMessages queues a new EXISTS update.
func (t *MailboxTracker) QueueNumMessages(n uint32) {
	// TODO: merge consecutive NumMessages updates
	t.queueUpdate(&trackerUpdate{numMessages: n}, nil)
}

// QueueMailboxFlags queues a new FLAGS update.
func (t *MailboxTracker) QueueMailboxFlags(flags []imap.Flag) {
	if flags == nil {
		flags = []imap.Flag{}
	}
	t.queueUpdate(&trackerUpdate{mailboxFlags: flags}, nil)
}

// QueueMailboxFlagsChanged queues a mark that the mailbox's flags grew, a
// keyword being used for the first time (certmail patch). When a session
// polls past it, the function given to SetMailboxFlagsWriter runs there,
// before any FETCH queued after it, and writes the session's FLAGS (and
// PERMANENTFLAGS) as they are then: RFC 3501 7.2.6 and RFC 9051 7.3.5 have
// the client learn of a keyword from FLAGS before a FETCH shows it, and
// each session knows which flags it already announced (a list written at
// queue time could be older than one the session wrote since).
func (t *MailboxTracker) QueueMailboxFlagsChanged() {
	t.queueUpdate(&trackerUpdate{flagsChanged: true}, nil)
}

// QueueMessageFlags queues a new FETCH FLAGS update.
//
// If source is not nil, the update won't be dispatched to it.
func (t *MailboxTracker) QueueMessageFlags(seqNum uint32, uid imap.UID, flags []imap.Flag, source *SessionTracker) {
	t.queueUpdate(&trackerUpdate{fetch: &trackerUpdateFetch{
		seqNum: seqNum,
		uid:    uid,
		flags:  flags,
	}}, source)
}

type trackerUpdate struct {
	expunge      uint32
	expungeUID   imap.UID // certmail patch: for VANISHED, if known
	numMessages  uint32
	mailboxFlags []imap.Flag
	fetch        *trackerUpdateFetch
	// flagsChanged marks where the mailbox's flags grew (certmail patch,
	// QueueMailboxFlagsChanged).
	flagsChanged bool
	// before is the mailbox's number of messages before the update
	// (certmail patch, for PollDeferringNew).
	before uint32
}

type trackerUpdateFetch struct {
	seqNum uint32
	uid    imap.UID
	flags  []imap.Flag
	modSeq uint64 // certmail patch
}

// QueueMessageFlagsModSeq is QueueMessageFlags with the change's
// mod-sequence, written as MODSEQ to sessions that enabled CONDSTORE
// (certmail patch, RFC 7162 3.2).
func (t *MailboxTracker) QueueMessageFlagsModSeq(seqNum uint32, uid imap.UID, flags []imap.Flag, modSeq uint64, source *SessionTracker) {
	t.queueUpdate(&trackerUpdate{fetch: &trackerUpdateFetch{
		seqNum: seqNum,
		uid:    uid,
		flags:  flags,
		modSeq: modSeq,
	}}, source)
}

// SessionTracker tracks the state of a mailbox for an IMAP client.
type SessionTracker struct {
	mailbox *MailboxTracker

	mutex   sync.Mutex
	queue   []trackerUpdate
	updates chan<- struct{}
	// flagsWriter is called where QueueMailboxFlagsChanged's mark is
	// polled (certmail patch).
	flagsWriter func() error
	// flagsRewrite, if set, decides how a queued flag change is
	// written (certmail patch).
	flagsRewrite FlagsRewrite
	// expungeHook runs before each expunge is written (certmail patch).
	expungeHook ExpungeHook
}

// ExpungeHook is told of each expunge just before it is written, with the
// message's sequence number as the client knows it then and its UID
// (certmail patch): what must precede the EXPUNGE, a REMOVEFROM in
// sequence numbers (RFC 5267 section 4.3.4), is written there. It runs on
// the goroutine that polls.
type ExpungeHook func(w *UpdateWriter, seqNum uint32, uid imap.UID) error

// SetExpungeHook sets the session's ExpungeHook (certmail patch).
func (t *SessionTracker) SetExpungeHook(f ExpungeHook) {
	t.mutex.Lock()
	t.expungeHook = f
	t.mutex.Unlock()
}

// FlagsRewrite decides how a queued flag change of the message uid
// (flags, with mod-sequence modSeq) is written: with the flags and
// mod-sequence it returns, or not at all if write is false (certmail
// patch).
type FlagsRewrite func(uid imap.UID, flags []imap.Flag, modSeq uint64) (newFlags []imap.Flag, newModSeq uint64, write bool, err error)

// SetFlagsRewrite sets the session's FlagsRewrite (certmail patch). A
// queued change can be older than what the client was told since: another
// session's STORE committed just before this session's own, whose
// response shows the later state; written as queued after it, it would
// take the client's view back (and its MODSEQ down, which RFC 7162 3.2
// clients treat as an error). The session can write the current state
// instead. It runs on the goroutine that polls.
func (t *SessionTracker) SetFlagsRewrite(f FlagsRewrite) {
	t.mutex.Lock()
	t.flagsRewrite = f
	t.mutex.Unlock()
}

// SetMailboxFlagsWriter sets the function that writes this session's
// FLAGS when a QueueMailboxFlagsChanged mark is polled (certmail patch).
// It runs on the goroutine that polls. Without one, the mark writes
// nothing.
func (t *SessionTracker) SetMailboxFlagsWriter(f func() error) {
	t.mutex.Lock()
	t.flagsWriter = f
	t.mutex.Unlock()
}

// Close unregisters the session.
func (t *SessionTracker) Close() {
	t.mailbox.mutex.Lock()
	delete(t.mailbox.sessions, t)
	t.mailbox.mutex.Unlock()
	t.mailbox = nil
}

func (t *SessionTracker) queueUpdate(update *trackerUpdate) {
	var updates chan<- struct{}
	t.mutex.Lock()
	t.queue = append(t.queue, *update)
	updates = t.updates
	t.mutex.Unlock()

	if updates != nil {
		select {
		case updates <- struct{}{}:
			// we notified SessionTracker.Idle about the update
		default:
			// skip the update
		}
	}
}

// Poll dequeues pending mailbox updates for this session.
func (t *SessionTracker) Poll(w *UpdateWriter, allowExpunge bool) error {
	var updates []trackerUpdate
	t.mutex.Lock()
	if allowExpunge {
		updates = t.queue
		t.queue = nil
	} else {
		stopIndex := -1
		for i, update := range t.queue {
			if update.expunge != 0 {
				stopIndex = i
				break
			}
			updates = append(updates, update)
		}
		if stopIndex >= 0 {
			t.queue = t.queue[stopIndex:]
		} else {
			t.queue = nil
		}
	}
	fw, fl, eh := t.flagsWriter, t.flagsRewrite, t.expungeHook
	t.mutex.Unlock()
	return writeUpdates(w, updates, fw, fl, eh)
}

// writeUpdates writes updates in order (certmail patch: shared by Poll
// and PollDeferringNew).
func writeUpdates(w *UpdateWriter, updates []trackerUpdate, flagsWriter func() error, flagsRewrite FlagsRewrite, expungeHook ExpungeHook) error {
	vanished := w.conn != nil && w.conn.QResyncEnabled()
	for i := 0; i < len(updates); i++ {
		update := updates[i]
		var err error
		switch {
		case vanished && update.expunge != 0 && update.expungeUID != 0:
			// certmail patch: once QRESYNC is enabled, expunges are
			// reported by VANISHED, consecutive ones in one response
			// (RFC 7162 3.2.10).
			var uids imap.UIDSet
			group := []trackerUpdate{update}
			for i+1 < len(updates) && updates[i+1].expunge != 0 && updates[i+1].expungeUID != 0 {
				i++
				group = append(group, updates[i])
			}
			for k, u := range group {
				uids.AddNum(u.expungeUID)
				if expungeHook == nil {
					continue
				}
				// The VANISHED comes after every hook: each message's
				// number as the client knows it before the group.
				seq := u.expunge
				for j := k - 1; j >= 0; j-- {
					if seq >= group[j].expunge {
						seq++
					}
				}
				if err := expungeHook(w, seq, u.expungeUID); err != nil {
					return err
				}
			}
			err = w.writeVanished(uids)
		case update.expunge != 0:
			if expungeHook != nil {
				if err := expungeHook(w, update.expunge, update.expungeUID); err != nil {
					return err
				}
			}
			err = w.WriteExpunge(update.expunge)
		case update.numMessages != 0:
			err = w.WriteNumMessages(update.numMessages)
		case update.mailboxFlags != nil:
			err = w.WriteMailboxFlags(update.mailboxFlags)
		case update.fetch != nil:
			f := *update.fetch
			if flagsRewrite != nil && f.uid != 0 {
				flags, modSeq, write, rerr := flagsRewrite(f.uid, f.flags, f.modSeq)
				if rerr != nil {
					return rerr
				}
				if !write {
					continue
				}
				f.flags, f.modSeq = flags, modSeq
			}
			err = w.writeMessageFlags(f.seqNum, f.uid, f.flags, f.modSeq)
		case update.flagsChanged:
			if flagsWriter != nil {
				err = flagsWriter()
			}
		default:
			panic(fmt.Errorf("imapserver: unknown tracker update %#v", update))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// PollDeferringNew is Poll for the end of a command whose own response
// should not announce new messages (certmail patch): some clients ignore
// an EXISTS inside the response to their own MOVE or COPY and so never
// learn of the message it reports. It writes every queued update about
// messages the client already knows (EXPUNGE, FETCH FLAGS, FLAGS) and
// leaves queued, for the next Poll or Idle, one EXISTS per new message
// followed by any update that names a new message and all after it: to
// the client, the new messages arrive after the command completed. The
// client's view stays consistent (RFC 9051 section 7.5.1): an EXPUNGE of
// a message not yet announced is dropped, as if it had never arrived.
func (t *SessionTracker) PollDeferringNew(w *UpdateWriter) error {
	var write []trackerUpdate
	t.mutex.Lock()
	var (
		known       bool   // a numMessages update was seen: count is set
		count       uint32 // the client's number of messages, once known
		unannounced uint32 // new messages not announced
		held        []trackerUpdate
	)
loop:
	for i, u := range t.queue {
		switch {
		case u.numMessages != 0:
			if !known {
				// Everything before was written: the client's count is
				// the mailbox's before this update.
				known, count = true, u.before
			}
			unannounced = u.numMessages - count
		case u.expunge != 0:
			if known && u.expunge > count {
				unannounced-- // a new message, gone before it was announced
				continue
			}
			if known {
				count--
			}
			write = append(write, u)
		case u.fetch != nil && known && u.fetch.seqNum > count:
			// About a new message: it and everything after wait for the
			// EXISTS that announces it.
			held = t.queue[i:]
			break loop
		default:
			write = append(write, u)
		}
	}
	var queue []trackerUpdate
	for n := uint32(1); n <= unannounced; n++ {
		// One per message: EncodeSeqNum hides each pending one by its
		// number.
		queue = append(queue, trackerUpdate{numMessages: count + n, before: count + n - 1})
	}
	t.queue = append(queue, held...)
	fw, fl, eh := t.flagsWriter, t.flagsRewrite, t.expungeHook
	t.mutex.Unlock()

	return writeUpdates(w, write, fw, fl, eh)
}

// QueuedExpunges returns the UIDs of the expunges queued for the session
// and not yet written (certmail patch): to the client these messages
// still exist, so an answer about the past (VANISHED (EARLIER), RFC 7162
// 3.2.5, 3.2.6) must not name them before the VANISHED that removes
// them from its view. Expunges queued without a UID are not included.
func (t *SessionTracker) QueuedExpunges() []imap.UID {
	t.mutex.Lock()
	defer t.mutex.Unlock()
	var uids []imap.UID
	for _, u := range t.queue {
		if u.expunge != 0 && u.expungeUID != 0 {
			uids = append(uids, u.expungeUID)
		}
	}
	return uids
}

// ClientNumMessages is the number of messages in the client's view
// (certmail patch): the mailbox's count before the first update not yet
// written to it. Counting the messages of the mailbox that EncodeSeqNum
// maps undercounts when the client's last messages are expunged and it
// has not been told, and "*" then named a message before them.
func (t *SessionTracker) ClientNumMessages() uint32 {
	t.mutex.Lock()
	defer t.mutex.Unlock()
	if len(t.queue) > 0 {
		return t.queue[0].before
	}
	return t.mailbox.numMessages
}

// QueuedExpungeSeqNums maps the sequence numbers the client still has for
// messages whose expunge is queued for the session and not yet written
// to their UIDs (certmail patch): a STORE may name such a message, and
// its answer is about the message as the client sees it. Expunges queued
// without a UID, and those of messages the client was never told of, are
// not included.
func (t *SessionTracker) QueuedExpungeSeqNums() map[uint32]imap.UID {
	t.mutex.Lock()
	defer t.mutex.Unlock()
	if len(t.queue) == 0 {
		return nil
	}
	known := t.queue[0].before // the client's count: none of the queue is written
	var out map[uint32]imap.UID
	for k, u := range t.queue {
		if u.expunge == 0 || u.expungeUID == 0 {
			continue
		}
		// u.expunge numbers the message after the updates before it;
		// undo their expunges to number it as the client does.
		seq := u.expunge
		for i := k - 1; i >= 0; i-- {
			if e := t.queue[i].expunge; e != 0 && seq >= e {
				seq++
			}
		}
		if seq > known {
			continue // added after the client's view and gone again
		}
		if out == nil {
			out = make(map[uint32]imap.UID)
		}
		out[seq] = u.expungeUID
	}
	return out
}

// Queued reports whether updates are queued for the session (certmail
// patch): until they are written, the client's view is older than the
// mailbox.
func (t *SessionTracker) Queued() bool {
	t.mutex.Lock()
	defer t.mutex.Unlock()
	return len(t.queue) > 0
}

// Idle continuously writes mailbox updates.
//
// When the stop channel is closed, it returns.
//
// Idle cannot be invoked concurrently from two separate goroutines.
func (t *SessionTracker) Idle(w *UpdateWriter, stop <-chan struct{}) error {
	updates := make(chan struct{}, 64)
	t.mutex.Lock()
	ok := t.updates == nil
	if ok {
		t.updates = updates
	}
	t.mutex.Unlock()
	if !ok {
		return fmt.Errorf("imapserver: only a single SessionTracker.Idle call is allowed at a time")
	}

	defer func() {
		t.mutex.Lock()
		t.updates = nil
		t.mutex.Unlock()
	}()

	for {
		select {
		case <-updates:
			if err := t.Poll(w, true); err != nil {
				return err
			}
		case <-stop:
			return nil
		}
	}
}

// DecodeSeqNum converts a message sequence number from the client view to the
// server view.
//
// Zero is returned if the message doesn't exist from the server point-of-view.
func (t *SessionTracker) DecodeSeqNum(seqNum uint32) uint32 {
	if seqNum == 0 {
		return 0
	}

	t.mutex.Lock()
	defer t.mutex.Unlock()

	for _, update := range t.queue {
		if update.expunge == 0 {
			continue
		}
		if seqNum == update.expunge {
			return 0
		} else if seqNum > update.expunge {
			seqNum--
		}
	}

	if seqNum > t.mailbox.numMessages {
		return 0
	}

	return seqNum
}

// EncodeSeqNum converts a message sequence number from the server view to the
// client view.
//
// Zero is returned if the message doesn't exist from the client point-of-view.
func (t *SessionTracker) EncodeSeqNum(seqNum uint32) uint32 {
	if seqNum == 0 {
		return 0
	}

	t.mutex.Lock()
	defer t.mutex.Unlock()

	if seqNum > t.mailbox.numMessages {
		return 0
	}

	for i := len(t.queue) - 1; i >= 0; i-- {
		update := t.queue[i]
		// TODO: this doesn't handle increments > 1
		if update.numMessages != 0 && seqNum == update.numMessages {
			return 0
		}
		if update.expunge != 0 && seqNum >= update.expunge {
			seqNum++
		}
	}
	return seqNum
}
