package imapsrv

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/mailbox"
)

// NOTIFY (RFC 5465): a client names the mailboxes it follows and the
// events it wants; the server tells it of them without being asked, after
// every command and during IDLE (section 5 lets the server send them at
// any time; these are the moments a client reads).
//
// The store's change feed (Server.onChange) hands each change of an
// account to the notifiers of that account's sessions, which only note
// it: a mailbox's ID with the kinds of message events it had, or a
// mailbox-list event. The session reads the notes on its own goroutine
// and writes what they come to then: a STATUS with the mailbox's counts
// as they are at that moment (many changes, one STATUS), a LIST per
// mailbox created, deleted, renamed or (un)subscribed. The selected
// mailbox keeps the tracker's EXISTS, EXPUNGE/VANISHED and FETCH FLAGS
// (with their CONDSTORE and QRESYNC forms), to which a SELECTED group's
// MessageNew adds a FETCH of its attributes for each new message.

const (
	// notifyMaxNames bounds the mailbox names of one NOTIFY's SUBTREE
	// and MAILBOXES groups together, as Dovecot does (100): more is
	// refused with NO [NOTIFICATIONOVERFLOW].
	notifyMaxNames = 100
	// notifyMaxPending bounds the notes a session keeps between two
	// deliveries (mailboxes with message events, and mailbox-list
	// events, each): a client that neither sends commands nor idles
	// cannot make the server hold more. Past it, the session forgets
	// them, sends OK [NOTIFICATIONOVERFLOW] and stops notifying (RFC
	// 5465 section 5.8). A note is at most a few dozen bytes.
	notifyMaxPending = 1000
)

// notifySupported are the events certmail can send. AnnotationChange
// needs ANNOTATE (RFC 5257), which certmail does not have: NOTIFY refuses
// it with NO [BADEVENT]. The metadata events come from METADATA (RFC
// 5464, metadata.go).
var notifySupported = []imap.NotifyEvent{
	imap.NotifyEventMessageNew, imap.NotifyEventMessageExpunge, imap.NotifyEventFlagChange,
	imap.NotifyEventMailboxName, imap.NotifyEventSubscriptionChange,
	imap.NotifyEventMailboxMetadataChange, imap.NotifyEventServerMetadataChange,
}

// Message events noted per mailbox.
const (
	noteNew uint8 = 1 << iota
	noteExpunge
	noteFlags
)

// listNote is a mailbox-list event waiting to be written as LIST, or a
// METADATA entry changed (kind MetadataChanged, entry set; id is
// mailbox.ServerMetadataID for a server entry).
type listNote struct {
	kind          mailbox.ChangeKind
	name, oldName string
	id            uint32
	entry         string
}

// notifier holds what a session has not yet been told. The change feed
// adds to it (offer) under mu, without blocking; the session takes it
// (take).
type notifier struct {
	acct string
	// Whether the session's groups ask for message events, mailbox-list
	// events, subscription events, mailbox and server METADATA events at
	// all (fixed at NOTIFY).
	messages, names, subscriptions, metadata, serverMetadata bool

	mu       sync.Mutex
	boxes    map[uint32]uint8 // mailbox ID -> noted message events
	order    []uint32         // boxes' keys, in order of first event
	lists    []listNote
	overflow bool
	// wake is signalled after each note, for IDLE.
	wake chan struct{}
}

func (n *notifier) offer(c mailbox.Change) {
	var ev uint8
	switch c.Kind {
	case mailbox.MessageAdded:
		ev = noteNew
	case mailbox.MessageExpunged:
		ev = noteExpunge
	case mailbox.MessageFlags:
		ev = noteFlags
	case mailbox.MailboxCreated, mailbox.MailboxDeleted, mailbox.MailboxRenamed:
		if !n.names {
			return
		}
	case mailbox.MailboxSubscribed, mailbox.MailboxUnsubscribed:
		if !n.subscriptions {
			return
		}
	case mailbox.MetadataChanged:
		if c.MailboxID == mailbox.ServerMetadataID && !n.serverMetadata ||
			c.MailboxID != mailbox.ServerMetadataID && !n.metadata {
			return
		}
	default:
		return
	}
	if ev != 0 && !n.messages {
		// The selected mailbox's events come through its tracker.
		return
	}
	n.mu.Lock()
	switch {
	case n.overflow:
	case ev != 0:
		if old, ok := n.boxes[c.MailboxID]; ok {
			n.boxes[c.MailboxID] = old | ev
		} else if len(n.order) >= notifyMaxPending {
			n.overflowLocked()
		} else {
			n.boxes[c.MailboxID] = ev
			n.order = append(n.order, c.MailboxID)
		}
	case len(n.lists) >= notifyMaxPending:
		n.overflowLocked()
	default:
		n.lists = append(n.lists, listNote{kind: c.Kind, name: c.Mailbox, oldName: c.OldName, id: c.MailboxID, entry: c.Entry})
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) overflowLocked() {
	n.overflow = true
	n.boxes, n.order, n.lists = nil, nil, nil
}

// take returns the notes and forgets them.
func (n *notifier) take() (boxes map[uint32]uint8, order []uint32, lists []listNote, overflow bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	boxes, order, lists, overflow = n.boxes, n.order, n.lists, n.overflow
	if len(order) > 0 || overflow {
		n.boxes = make(map[uint32]uint8)
	}
	n.order, n.lists, n.overflow = nil, nil, false
	return
}

// notifiers are the notifiers of each account's sessions.
type notifiers struct {
	mu sync.Mutex
	m  map[string]map[*notifier]struct{}
}

func (ns *notifiers) add(n *notifier) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.m == nil {
		ns.m = make(map[string]map[*notifier]struct{})
	}
	set := ns.m[n.acct]
	if set == nil {
		set = make(map[*notifier]struct{})
		ns.m[n.acct] = set
	}
	set[n] = struct{}{}
}

func (ns *notifiers) remove(n *notifier) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if set := ns.m[n.acct]; set != nil {
		delete(set, n)
		if len(set) == 0 {
			delete(ns.m, n.acct)
		}
	}
}

// offer hands a change to the account's notifiers. It runs on the change
// feed: it must not block.
func (ns *notifiers) offer(c mailbox.Change) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for n := range ns.m[c.Account] {
		n.offer(c)
	}
}

// notifySpec is a session's NOTIFY SET, checked.
type notifySpec struct {
	groups []imap.NotifyGroup
	// selected is the SELECTED or SELECTED-DELAYED group, if any.
	selected *imap.NotifyGroup
	// status are the STATUS items of every unsolicited STATUS: those
	// Dovecot sends, HIGHESTMODSEQ when some group asks for FlagChange.
	status imap.StatusOptions
}

// Notify is NOTIFY SET and NOTIFY NONE (RFC 5465 section 3).
func (sess *session) Notify(w *imapserver.UpdateWriter, options *imap.NotifyOptions) error {
	if len(options.Groups) == 0 {
		sess.notifyOff()
		return nil
	}
	spec := &notifySpec{status: imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true}}
	var bad []string
	names := 0
	for i := range options.Groups {
		g := &options.Groups[i]
		for _, ev := range g.Events {
			if !slices.Contains(notifySupported, ev) && !slices.Contains(bad, string(ev)) {
				bad = append(bad, string(ev))
			}
			if ev == imap.NotifyEventFlagChange {
				spec.status.HighestModSeq = true
			}
		}
		names += len(g.Mailboxes)
		if g.Filter == imap.NotifyFilterSelected || g.Filter == imap.NotifyFilterSelectedDelayed {
			spec.selected = g
		}
		spec.groups = append(spec.groups, *g)
	}
	if len(bad) > 0 {
		// Section 3.1: NOTIFY with an event the server cannot send
		// fails, naming them, and leaves the previous settings.
		return &imap.Error{Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCode(string(imap.ResponseCodeBadEvent) + " (" + strings.Join(bad, " ") + ")"),
			Text: "Unsupported NOTIFY events"}
	}
	if names > notifyMaxNames {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNotificationOverflow,
			Text: fmt.Sprintf("NOTIFY follows at most %d mailbox names", notifyMaxNames)}
	}
	if sel := spec.selected; sel != nil && sel.Fetch != nil {
		// A notification changes nothing: BODY[] is read as BODY.PEEK[].
		for _, bs := range sel.Fetch.BodySection {
			bs.Peek = true
		}
		for _, bs := range sel.Fetch.BinarySection {
			bs.Peek = true
		}
		sel.Fetch.ChangedSince, sel.Fetch.Vanished = 0, false
	}
	sess.notifyOff()
	n := &notifier{acct: sess.acct, boxes: make(map[uint32]uint8), wake: make(chan struct{}, 1)}
	for _, g := range spec.groups {
		for _, ev := range g.Events {
			switch ev {
			case imap.NotifyEventMailboxMetadataChange:
				n.metadata = true
			case imap.NotifyEventServerMetadataChange:
				n.serverMetadata = true
			}
		}
		if g.Filter == imap.NotifyFilterSelected || g.Filter == imap.NotifyFilterSelectedDelayed {
			continue
		}
		for _, ev := range g.Events {
			switch ev {
			case imap.NotifyEventMessageNew, imap.NotifyEventMessageExpunge, imap.NotifyEventFlagChange:
				n.messages = true
			case imap.NotifyEventMailboxName:
				n.names = true
			case imap.NotifyEventSubscriptionChange:
				n.subscriptions = true
			}
		}
	}
	// Registered before the STATUS indicator's responses are read, so
	// that a change in between is not lost (it is told twice at worst).
	sess.srv.notifiers.add(n)
	sess.notify, sess.notifier = spec, n
	if sel := spec.selected; sel != nil && sess.box != nil {
		sess.box.mu.Lock()
		if k := len(sess.box.msgs); k > 0 {
			sess.notifyNewUID = max(sess.notifyNewUID, sess.box.msgs[k-1].UID+1)
		}
		sess.box.mu.Unlock()
	}
	if !options.Status {
		return nil
	}
	// Section 3.1: with STATUS, one STATUS for each mailbox the groups
	// cover with message events, other than the selected one.
	view, err := sess.notifyView()
	if err != nil {
		return err
	}
	for _, mb := range view.boxes {
		if sess.box != nil && mb.ID == sess.mboxID {
			continue
		}
		if g := spec.match(mb.Name, view); g == nil || !wantsMessages(g) {
			continue
		}
		if err := sess.writeNotifyStatus(w, mb.Name); err != nil {
			return err
		}
	}
	return nil
}

func wantsMessages(g *imap.NotifyGroup) bool {
	return g.Has(imap.NotifyEventMessageNew) || g.Has(imap.NotifyEventMessageExpunge) || g.Has(imap.NotifyEventFlagChange)
}

// notifyOff is NOTIFY NONE: the session's notes are dropped.
func (sess *session) notifyOff() {
	if sess.notifier != nil {
		sess.srv.notifiers.remove(sess.notifier)
	}
	sess.notify, sess.notifier = nil, nil
}

// notifyView is the account's mailbox list as NOTIFY matches names
// against it.
type notifyView struct {
	boxes      []*mailbox.MailboxInfo
	byID       map[uint32]*mailbox.MailboxInfo
	subscribed map[string]bool
}

func (sess *session) notifyView() (*notifyView, error) {
	v := &notifyView{byID: make(map[uint32]*mailbox.MailboxInfo), subscribed: make(map[string]bool)}
	var kept []string
	err := sess.srv.store.View(func(tx *mailbox.Tx) error {
		var err error
		if v.boxes, err = tx.ListMailboxes(sess.acct); err != nil {
			return err
		}
		kept, err = tx.Subscriptions(sess.acct)
		return err
	})
	if err != nil {
		return nil, storeError(err)
	}
	for _, mb := range v.boxes {
		v.byID[mb.ID] = mb
		if mb.Subscribed {
			v.subscribed[mb.Name] = true
		}
	}
	for _, n := range kept {
		v.subscribed[n] = true
	}
	return v, nil
}

// match returns the group that decides about mailbox name: the most
// specific of those that cover it (MAILBOXES, then SUBTREE, then
// SUBSCRIBED and INBOXES, then PERSONAL), the first given among equals;
// nil if none does. SELECTED groups are not matched by name.
func (spec *notifySpec) match(name string, v *notifyView) *imap.NotifyGroup {
	var best *imap.NotifyGroup
	bestRank := 0
	for i := range spec.groups {
		g := &spec.groups[i]
		rank := 0
		switch g.Filter {
		case imap.NotifyFilterMailboxes:
			if slices.Contains(g.Mailboxes, name) {
				rank = 4
			}
		case imap.NotifyFilterSubtree:
			for _, root := range g.Mailboxes {
				if name == root || strings.HasPrefix(name, root+string(mailbox.Delimiter)) {
					rank = 3
				}
			}
		case imap.NotifyFilterSubscribed:
			if v.subscribed[name] {
				rank = 2
			}
		case imap.NotifyFilterInboxes:
			// Mail is delivered to INBOX (LMTP, certified stubs).
			if name == "INBOX" {
				rank = 2
			}
		case imap.NotifyFilterPersonal:
			rank = 1 // certmail has only the personal namespace
		}
		if rank > bestRank {
			best, bestRank = g, rank
		}
	}
	return best
}

func (sess *session) writeNotifyStatus(w *imapserver.UpdateWriter, name string) error {
	data, err := sess.status(name, &sess.notify.status)
	if err != nil {
		return err
	}
	return w.WriteStatus(data, &sess.notify.status)
}

// deliverNotify writes what the session's notifier holds, and for a
// SELECTED group's MessageNew the FETCH of each new message. It runs after
// the tracker's updates, on the session's goroutine.
func (sess *session) deliverNotify(w *imapserver.UpdateWriter) error {
	n := sess.notifier
	if n == nil {
		return nil
	}
	boxes, order, lists, overflow := n.take()
	if overflow {
		sess.notifyOff()
		return w.WriteNotificationOverflow("Too many events: NOTIFY is off until the next NOTIFY")
	}
	if err := sess.fetchNew(w); err != nil {
		return err
	}
	if len(order) == 0 && len(lists) == 0 {
		return nil
	}
	view, err := sess.notifyView()
	if err != nil {
		// The events are lost, the connection is not: a failed
		// Poll would end it.
		sess.log.Warn("NOTIFY: reading the mailbox list", "user", sess.acct, "err", err)
		return nil
	}
	for _, l := range lists {
		if err := sess.writeListNote(w, l, view); err != nil {
			return err
		}
	}
	for _, id := range order {
		mb := view.byID[id]
		if mb == nil || (sess.box != nil && id == sess.mboxID) {
			continue // gone since, or the selected one (its tracker tells)
		}
		g := sess.notify.match(mb.Name, view)
		if g == nil {
			continue
		}
		ev := boxes[id]
		if ev&noteNew != 0 && g.Has(imap.NotifyEventMessageNew) ||
			ev&noteExpunge != 0 && g.Has(imap.NotifyEventMessageExpunge) ||
			ev&noteFlags != 0 && g.Has(imap.NotifyEventFlagChange) {
			if err := sess.writeNotifyStatus(w, mb.Name); err != nil {
				if isNoSuchMailbox(err) {
					continue // deleted since the list was read
				}
				return err
			}
		}
	}
	return nil
}

func isNoSuchMailbox(err error) bool {
	var imapErr *imap.Error
	return errors.As(err, &imapErr) && imapErr.Code == imap.ResponseCodeNonExistent
}

// writeListNote writes a mailbox-list event as LIST (RFC 5465 5.6, 5.7)
// if a group covering the name asks for it.
func (sess *session) writeListNote(w *imapserver.UpdateWriter, l listNote, v *notifyView) error {
	if l.kind == mailbox.MetadataChanged {
		return sess.writeMetadataNote(w, l, v)
	}
	want := imap.NotifyEventMailboxName
	if l.kind == mailbox.MailboxSubscribed || l.kind == mailbox.MailboxUnsubscribed {
		want = imap.NotifyEventSubscriptionChange
	}
	g := sess.notify.match(l.name, v)
	if (g == nil || !g.Has(want)) && l.oldName != "" {
		g = sess.notify.match(l.oldName, v)
	}
	if g == nil || !g.Has(want) {
		return nil
	}
	data := &imap.ListData{Mailbox: l.name, Delim: mailbox.Delimiter, Attrs: []imap.MailboxAttr{}}
	switch l.kind {
	case mailbox.MailboxDeleted:
		data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
	case mailbox.MailboxRenamed:
		data.OldName = l.oldName // RFC 5465 5.6, RFC 5258 OLDNAME
	}
	if l.kind == mailbox.MailboxSubscribed {
		// As of the event: an UNSUBSCRIBE since has its own note.
		data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
	}
	return w.WriteList(data)
}

// fetchNew writes, for a SELECTED group's MessageNew with fetch
// attributes, a FETCH of each message the client has been told of since
// the last one (RFC 5465 5.2). It goes through FETCH itself, so a
// certified stub shows what FETCH shows of it: the stub, nothing of the
// message it stands for.
func (sess *session) fetchNew(w *imapserver.UpdateWriter) error {
	sel := sess.notify.selected
	if sel == nil || sel.Fetch == nil || sess.box == nil {
		return nil
	}
	box := sess.box
	box.mu.Lock()
	var last uint32
	if k := len(box.msgs); k > 0 {
		last = box.msgs[k-1].UID
	}
	box.mu.Unlock()
	first := max(sess.notifyNewUID, 1)
	if last < first {
		return nil
	}
	// resolve skips messages not yet announced; they stay above the
	// floor for the next time.
	set := imap.UIDSet{imap.UIDRange{Start: imap.UID(first), Stop: imap.UID(last)}}
	announced := sess.resolve(set)
	if len(announced) == 0 {
		return nil
	}
	sess.notifyNewUID = announced[len(announced)-1].msg.UID + 1
	uids := make(imap.UIDSet, 0, 1)
	for _, t := range announced {
		uids.AddNum(imap.UID(t.msg.UID))
	}
	return sess.Fetch(w.NotifyFetchWriter(), uids, sel.Fetch)
}

// writeMetadataNote writes a METADATA entry's change as an unsolicited
// METADATA response (RFC 5465 5.6, RFC 5464 4.4.2): a server entry if some
// group asks for ServerMetadataChange, a mailbox's if the group that
// decides about the mailbox (the SELECTED one for the selected mailbox)
// asks for MailboxMetadataChange.
func (sess *session) writeMetadataNote(w *imapserver.UpdateWriter, l listNote, v *notifyView) error {
	if l.id == mailbox.ServerMetadataID {
		for i := range sess.notify.groups {
			if sess.notify.groups[i].Has(imap.NotifyEventServerMetadataChange) {
				return w.WriteMetadataChanged("", []string{l.entry})
			}
		}
		return nil
	}
	mb := v.byID[l.id]
	if mb == nil {
		return nil // deleted since
	}
	var g *imap.NotifyGroup
	if sel := sess.notify.selected; sel != nil && sess.box != nil && l.id == sess.mboxID {
		g = sel
	} else {
		g = sess.notify.match(mb.Name, v)
	}
	if g == nil || !g.Has(imap.NotifyEventMailboxMetadataChange) {
		return nil
	}
	return w.WriteMetadataChanged(mb.Name, []string{l.entry})
}
