package imapsrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/mailbox"
)

// session is one IMAP connection's state.
type session struct {
	srv  *Server
	conn *imapserver.Conn
	acct string // empty until authenticated
	// ip is the client's address, as the limits count it (limits.go).
	ip string
	// log is the server's logger, with the client's name and version
	// once it has sent ID (id.go).
	log *slog.Logger
	// password is kept for the session only when hooks need it (to open
	// the recipient's custody key); it never leaves memory.
	password string

	// Selected state.
	box       *trackedBox
	tracker   *imapserver.SessionTracker
	mboxID    uint32
	mboxName  string
	readOnly  bool
	searchRes imap.UIDSet
	// resync is the QRESYNC parameter of the SELECT being answered, for
	// QResync (qresync.go) to answer; nil when the client's UIDVALIDITY
	// is not the mailbox's.
	resync *imap.SelectQResync
	// viewModSeq is a HIGHESTMODSEQ of the mailbox the client's view
	// holds everything up to (see HighestModSeq).
	viewModSeq uint64
	// toldModSeq is the highest MODSEQ of a message state this session
	// wrote in a response of its own (STORE, FETCH, a QRESYNC SELECT) or
	// in place of a queued change: a queued change older than it may be
	// older than what the client was told (rewriteQueuedFlags).
	toldModSeq uint64
	// storedGone are the UIDs of messages a STORE answered about after
	// they were expunged (Store, numset.go goneLocked), until the
	// EXPUNGE is written: a flag change queued before the expunge would
	// take the client's view back behind that answer.
	storedGone map[uint32]bool
	// deferNew is set by a COPY or MOVE into a hook's mailbox (a stub into
	// Acknowledge) for the poll that ends it: the message it releases into
	// this mailbox is announced on the next poll (IDLE, NOOP, any
	// command), not inside this response, which some clients ignore.
	deferNew bool
	// contexts are the results kept up to date for SEARCH and SORT
	// RETURN (UPDATE) (context.go), until CANCELUPDATE or the mailbox is
	// closed.
	contexts []*searchContext
	// kwKnown is how many of box.keywords the client has been told of
	// in FLAGS (announceKeywords).
	kwKnown int
	// recent are the messages \Recent in this session (recent.go),
	// guarded by recentMu: onChange adds those that arrive.
	recentMu sync.Mutex
	recent   imap.UIDSet
	// recentReported and existsReported are the counts of recent
	// messages and of messages last told to a rev1 client (reportRecent).
	recentReported, existsReported uint32

	// notify is the last NOTIFY SET, nil without one; notifier holds the
	// events it has not yet been told of (notify.go). notifyNewUID is
	// the lowest UID of the selected mailbox that a SELECTED MessageNew
	// has not fetched.
	notify       *notifySpec
	notifier     *notifier
	notifyNewUID uint32

	// ctx ends with the session; long commands run under a context
	// derived from it (cancel.go).
	ctx    context.Context
	cancel context.CancelCauseFunc

	// deleted is set when the account is deleted (accounts.go);
	// byeOnce writes the BYE that ends the session (session.bye).
	deleted atomic.Bool
	byeOnce sync.Once
}

var (
	_ imapserver.SessionIMAP4rev2      = (*session)(nil)
	_ imapserver.SessionAppendLimit    = (*session)(nil)
	_ imapserver.SessionUnauthenticate = (*session)(nil)
	// auth.go
	_ imapserver.SessionSASL                  = (*session)(nil)
	_ imapserver.SessionAuthenticateMalformed = (*session)(nil)
	// notify.go
	_ imapserver.SessionNotify = (*session)(nil)
)

func (s *Server) newSession(c *imapserver.Conn) *session {
	ctx, cancel := context.WithCancelCause(context.Background())
	s.opts.Metrics.IMAPSession(+1) // until Close
	return &session{srv: s, conn: c, ip: hostOf(c.NetConn().RemoteAddr()), log: s.log, ctx: ctx, cancel: cancel}
}

func (sess *session) Close() error {
	if sess.cancel != nil {
		sess.cancel(errSessionEnded)
	}
	sess.unselect()
	sess.notifyOff()
	// Counted by admitConn and Login (limits.go).
	if sess.acct != "" {
		sess.srv.limits.releaseSession(sess.acct, sess.ip)
		sess.srv.sessions.remove(sess)
	}
	sess.srv.limits.releaseConn(sess.ip)
	sess.srv.opts.Metrics.IMAPSession(-1)
	return nil
}

func (sess *session) Unauthenticate() error {
	sess.unselect()
	sess.notifyOff()
	if sess.acct != "" {
		sess.srv.limits.releaseSession(sess.acct, sess.ip)
		sess.srv.sessions.remove(sess)
	}
	sess.acct, sess.password = "", ""
	return nil
}

func (sess *session) remote() string {
	if sess.conn == nil {
		return ""
	}
	return sess.conn.NetConn().RemoteAddr().String()
}

func (sess *session) AppendLimit() uint32 { return sess.srv.opts.AppendLimit }

// CondStore turns CONDSTORE and QRESYNC (RFC 7162) on: the store keeps a
// MODSEQ for every change and the expunges QRESYNC reports
// (mailbox/modseq.go).
func (sess *session) CondStore() bool { return true }

func (sess *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: mailbox.Delimiter}},
	}, nil
}

func (sess *session) Create(name string, options *imap.CreateOptions) error {
	_, err := sess.create(name, options)
	return err
}

// create is CREATE, returning the new mailbox (its MAILBOXID: objectid.go).
func (sess *session) create(name string, options *imap.CreateOptions) (*mailbox.MailboxInfo, error) {
	var uses []string
	if options != nil {
		for _, u := range options.SpecialUse {
			switch u {
			case imap.MailboxAttrAll, imap.MailboxAttrArchive, imap.MailboxAttrDrafts,
				imap.MailboxAttrFlagged, imap.MailboxAttrJunk, imap.MailboxAttrSent, imap.MailboxAttrTrash:
				uses = append(uses, string(u))
			default:
				return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR",
					Text: fmt.Sprintf("unsupported special-use attribute %s", u)}
			}
		}
	}
	name = strings.TrimSuffix(name, string(mailbox.Delimiter))
	var mb *mailbox.MailboxInfo
	err := sess.srv.store.Update(func(tx *mailbox.Tx) error {
		if err := createParents(tx, sess.acct, name); err != nil {
			return err
		}
		var err error
		mb, err = tx.CreateMailbox(sess.acct, mailbox.NewMailbox{Name: name, SpecialUse: uses})
		return err
	})
	if err != nil {
		return nil, storeError(err)
	}
	return mb, nil
}

// createParents creates the missing superior names of name, in the same
// transaction, as RFC 9051 (6.3.4 CREATE, 6.3.6 RENAME) says a server
// SHOULD: without them "CREATE Work/Notes" left "Work" absent, so LIST "%"
// did not show the hierarchy at all and clients could not browse to it.
func createParents(tx *mailbox.Tx, acct, name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] != mailbox.Delimiter {
			continue
		}
		parent := name[:i]
		_, err := tx.Mailbox(acct, parent)
		if err == nil {
			continue
		}
		if !errors.Is(err, mailbox.ErrNoMailbox) {
			return err
		}
		if _, err := tx.CreateMailbox(acct, mailbox.NewMailbox{Name: parent}); err != nil {
			return err
		}
	}
	return nil
}

func (sess *session) Delete(name string) error {
	// A mailbox with inferior names is not deleted, as on Dovecot: the
	// children would be left without a listed parent, and LIST "%" would
	// no longer lead to them. RFC 9051 6.3.5 forbids removing the
	// children with it.
	if mb, err := sess.srv.store.Mailbox(sess.acct, name); err == nil {
		boxes, err := sess.srv.store.ListMailboxes(sess.acct)
		if err != nil {
			return storeError(err)
		}
		for _, b := range boxes {
			if strings.HasPrefix(b.Name, mb.Name+string(mailbox.Delimiter)) {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeInUse,
					Text: "mailbox has children, delete them first"}
			}
		}
	}
	return storeError(sess.srv.store.DeleteMailbox(sess.acct, name))
}

func (sess *session) Rename(from, to string, _ *imap.RenameOptions) error {
	return storeError(sess.srv.store.Update(func(tx *mailbox.Tx) error {
		if err := tx.RenameMailbox(sess.acct, from, to); err != nil {
			return err
		}
		return createParents(tx, sess.acct, to)
	}))
}

func (sess *session) Subscribe(name string) error {
	return storeError(sess.srv.store.Update(func(tx *mailbox.Tx) error {
		return tx.SetSubscribed(sess.acct, name, true)
	}))
}

func (sess *session) Unsubscribe(name string) error {
	return storeError(sess.srv.store.Update(func(tx *mailbox.Tx) error {
		return tx.SetSubscribed(sess.acct, name, false)
	}))
}

func (sess *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		// LIST "" "": the hierarchy delimiter and root.
		return w.WriteList(&imap.ListData{
			Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect},
			Delim: mailbox.Delimiter,
		})
	}
	var boxes []*mailbox.MailboxInfo
	var kept []string // subscribed names no mailbox has
	if err := sess.srv.store.View(func(tx *mailbox.Tx) error {
		var err error
		if boxes, err = tx.ListMailboxes(sess.acct); err != nil {
			return err
		}
		kept, err = tx.Subscriptions(sess.acct)
		return err
	}); err != nil {
		return storeError(err)
	}
	lsub := w.LSub()
	byName := make(map[string]*mailbox.MailboxInfo, len(boxes))
	subscribed := make(map[string]bool)
	hasChildren := make(map[string]bool)
	for _, mb := range boxes {
		byName[mb.Name] = mb
		if mb.Subscribed {
			subscribed[mb.Name] = true
		}
		if i := strings.LastIndexByte(mb.Name, mailbox.Delimiter); i > 0 {
			hasChildren[mb.Name[:i]] = true
		}
	}
	for _, n := range kept {
		subscribed[n] = true
	}
	matches := func(name string) bool { return listMatch(name, ref, patterns) }
	// parentOfUnmatched: names with a subscribed descendant that the
	// patterns do not match. LIST (SUBSCRIBED RECURSIVEMATCH) returns
	// them with CHILDINFO (RFC 5258 3.5), LSUB with \Noselect when not
	// subscribed themselves (RFC 3501 6.3.9: LSUB "" "foo/%" with
	// foo/bar/baz subscribed lists foo/bar).
	parentOfUnmatched := make(map[string]bool)
	if options.SelectSubscribed && (lsub || options.SelectRecursiveMatch) {
		for name := range subscribed {
			if matches(name) {
				continue
			}
			for i := 0; i < len(name); i++ {
				if name[i] == mailbox.Delimiter {
					parentOfUnmatched[name[:i]] = true
				}
			}
		}
	}
	// The names that may be listed: every mailbox; with SUBSCRIBED, the
	// subscribed names without one too (RFC 5258 3.1: \NonExistent) and
	// the parents above.
	names := make([]string, 0, len(boxes))
	for _, mb := range boxes {
		names = append(names, mb.Name)
	}
	if options.SelectSubscribed {
		for n := range subscribed {
			if byName[n] == nil {
				names = append(names, n)
			}
		}
		for n := range parentOfUnmatched {
			if byName[n] == nil && !subscribed[n] {
				names = append(names, n)
			}
		}
		slices.Sort(names)
	}
	for _, name := range names {
		if !matches(name) {
			continue
		}
		mb := byName[name]
		isSub := subscribed[name]
		childInfo := false
		if options.SelectSubscribed {
			childInfo = parentOfUnmatched[name]
			if !isSub && !childInfo {
				continue
			}
		}
		if options.SelectSpecialUse && (mb == nil || len(mb.SpecialUse) == 0) {
			continue
		}
		data := &imap.ListData{Mailbox: name, Delim: mailbox.Delimiter}
		switch {
		case lsub:
			if mb == nil || !isSub {
				data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
			}
		case mb == nil:
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		}
		if childInfo && !lsub {
			data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		}
		if hasChildren[name] {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else if mb != nil {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if isSub && (options.SelectSubscribed || options.ReturnSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if mb != nil {
			// Special-use attributes are returned whether asked for or
			// not (RFC 6154 allows it), because clients that do not ask
			// for them still use them to find Sent and Trash.
			for _, u := range mb.SpecialUse {
				data.Attrs = append(data.Attrs, imap.MailboxAttr(u))
			}
			if options.ReturnStatus != nil {
				st, err := sess.status(mb.Name, options.ReturnStatus)
				if err != nil {
					return err
				}
				data.Status = st
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// listMatch matches a mailbox name against LIST patterns; INBOX matches
// case-insensitively, as RFC 9051 requires.
func listMatch(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if imapserver.MatchList(name, mailbox.Delimiter, ref, p) {
			return true
		}
		if strings.HasPrefix(name, "INBOX") {
			// Spell the part of the pattern that could be the start of
			// INBOX in upper case, so that "inbox", "Inbox/%" and also
			// "inb*" match INBOX as they do on Dovecot.
			full := []byte(ref + p)
			for i := 0; i < len(full) && i < 5 && strings.EqualFold(string(full[i]), "INBOX"[i:i+1]); i++ {
				full[i] = "INBOX"[i]
			}
			if imapserver.MatchList(name, mailbox.Delimiter, "", string(full)) {
				return true
			}
		}
	}
	return false
}

func (sess *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	return sess.status(name, options)
}

// status answers STATUS, LIST-STATUS and NOTIFY's STATUS. Each comes
// after the node caught up (CommandStart), or after the change it
// reports reached the node's memory (NOTIFY): the store may answer from
// that memory (StatusOptions.CaughtUp).
func (sess *session) status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	mb, st, err := sess.srv.store.StatusFor(sess.acct, name, mailbox.StatusOptions{HighestModSeq: options.HighestModSeq, CaughtUp: true})
	if err != nil {
		return nil, storeError(err)
	}
	data := &imap.StatusData{Mailbox: mb.Name}
	if options.NumMessages {
		data.NumMessages = &st.Messages
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		data.NumUnseen = &st.Unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &st.Deleted
	}
	if options.Size {
		data.Size = &st.Size
	}
	if options.DeletedStorage {
		// RFC 9208 section 4.2: in units of 1024 octets, what EXPUNGE
		// would take off the quota's STORAGE (quota.go rounds the same).
		kib := (st.DeletedSize + 1023) / 1024
		data.DeletedStorage = &kib
	}
	if options.NumRecent {
		n := sess.srv.recentStatus(sess.acct, mb, st.Recent)
		data.NumRecent = &n
	}
	if options.AppendLimit {
		limit := sess.srv.opts.AppendLimit
		data.AppendLimit = &limit
	}
	if options.HighestModSeq {
		data.HighestModSeq = st.HighestModSeq
	}
	if options.MailboxID { // RFC 8474 4.2 (objectid.go)
		data.MailboxID = MailboxObjectID(mb.ID, mb.UIDValidity)
	}
	return data, nil
}

func (sess *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	// imapserver calls Unselect before any SELECT in the selected state,
	// so nothing is selected here; selecting the same mailbox again finds
	// its tracked state still open (boxLinger).
	sess.unselect()
	mb, err := sess.srv.store.CurrentMailbox(sess.acct, name)
	if err != nil {
		return nil, storeError(err)
	}
	box, st, info, facts, err := sess.srv.open(sess.acct, mb.ID, mb.Name)
	if err != nil {
		return nil, storeError(err)
	}
	sess.box, sess.tracker = box, st
	sess.mboxID, sess.mboxName = info.ID, info.Name
	sess.readOnly = options != nil && options.ReadOnly
	sess.searchRes = nil
	sess.kwKnown = len(facts.Keywords)
	sess.viewModSeq = facts.HighestModSeq
	sess.toldModSeq = 0
	sess.storedGone = nil
	sess.notifyNewUID = info.UIDNext // notify.go
	st.SetMailboxFlagsWriter(sess.announceKeywords)
	st.SetExpungeHook(func(w *imapserver.UpdateWriter, seq uint32, uid imap.UID) error {
		delete(sess.storedGone, uint32(uid))
		return sess.contextExpunge(w, seq, uid)
	})
	st.SetFlagsRewrite(func(uid imap.UID, flags []imap.Flag, modSeq uint64) ([]imap.Flag, uint64, bool, error) {
		flags, modSeq, ok, err := sess.rewriteQueuedFlags(box, uid, flags, modSeq)
		if ok && err == nil && sess.rev1() && sess.isRecent(uint32(uid)) && !slices.Contains(flags, flagRecent) {
			flags = append([]imap.Flag{flagRecent}, flags...)
		}
		return flags, modSeq, ok, err
	})
	sess.resync = nil
	if options != nil && options.QResync != nil && options.QResync.UIDValidity == info.UIDValidity {
		sess.resync = options.QResync
	}

	recent, err := sess.claimRecent(box, info, sess.readOnly)
	if err != nil {
		sess.unselect()
		return nil, storeError(err)
	}
	// Merged, not assigned: once the claim committed, this session owns
	// the box's new messages, and one may have arrived (addRecent) before
	// this line; assigning would make it recent in no session.
	sess.recentMu.Lock()
	for _, r := range recent {
		sess.recent.AddRange(r.Start, r.Stop)
	}
	sess.recentMu.Unlock()
	box.mu.Lock()
	sess.recentReported, sess.existsReported = sess.recentCount(box), uint32(len(box.msgs))
	box.mu.Unlock()

	flags := mailboxFlags(facts.Keywords)
	data := &imap.SelectData{
		Flags:             flags,
		NumMessages:       facts.Status.Messages,
		UIDNext:           imap.UID(info.UIDNext),
		UIDValidity:       info.UIDValidity,
		PermanentFlags:    append(slices.Clone(flags), imap.FlagWildcard),
		FirstUnseenSeqNum: facts.FirstUnseen,
		HighestModSeq:     facts.HighestModSeq,
		NumRecent:         sess.recentReported,
		MailboxID:         MailboxObjectID(info.ID, info.UIDValidity), // RFC 8474 4.1
	}
	if sess.readOnly {
		data.PermanentFlags = nil
	}
	return data, nil
}

// mailboxFlags is the FLAGS list: the system flags plus the keywords in
// use, one spelling of each.
func mailboxFlags(keywords []string) []imap.Flag {
	flags := []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}
	seen := make(map[string]bool, len(keywords))
	for _, f := range keywords {
		if k := strings.ToLower(f); !seen[k] {
			seen[k] = true
			flags = append(flags, imap.Flag(f))
		}
	}
	return flags
}

// announceKeywords writes FLAGS, and PERMANENTFLAGS unless the mailbox is
// read-only, when the mailbox has keywords the client has not been told
// of: a client learns of a keyword from FLAGS before any FETCH shows it
// (RFC 3501 7.2.6, RFC 9051 7.3.5), whichever session first used it.
// It runs before the FETCH responses of FETCH and STORE, and where the
// tracker's queue says the flags grew (SetMailboxFlagsWriter).
func (sess *session) announceKeywords() error {
	box := sess.box
	if box == nil || sess.conn == nil {
		return nil
	}
	box.mu.Lock()
	if len(box.keywords) <= sess.kwKnown {
		box.mu.Unlock()
		return nil
	}
	keywords := slices.Clone(box.keywords)
	box.mu.Unlock()
	sess.kwKnown = len(keywords)
	flags := mailboxFlags(keywords)
	var permanent []imap.Flag
	if !sess.readOnly {
		permanent = append(slices.Clone(flags), imap.FlagWildcard)
	}
	return sess.conn.WriteMailboxFlags(flags, permanent)
}

// HighestModSeq is the HIGHESTMODSEQ written when the first
// CONDSTORE-enabling command comes in the selected state (RFC 7162 3.1).
// It must not be newer than the client's view: a client that keeps it
// and resyncs from it later would never learn of a change still queued
// for it now. With nothing queued the view is the mailbox's; else the
// last value known to be covered.
func (sess *session) HighestModSeq() (uint64, error) {
	box := sess.box
	if box == nil {
		return 0, nil
	}
	box.mu.Lock()
	defer box.mu.Unlock()
	if !sess.tracker.Queued() {
		sess.viewModSeq = box.highest
	}
	return sess.viewModSeq, nil
}

// rewriteQueuedFlags is the session tracker's FlagsRewrite: a queued flag
// change no older than anything this session has shown is written as it
// came (the client sees each change in order); an older one may be older
// than what the client was told since (another session's STORE committed
// just before this session's own, whose response showed the later
// state), so the message's flags as they are now are written instead, or
// nothing if it has been expunged since (its EXPUNGE or VANISHED is
// queued after). A keyword among them the client has not been told of
// goes into FLAGS first. A change to a message a STORE answered about
// after its expunge (storedGone) is not written: that answer came later.
func (sess *session) rewriteQueuedFlags(box *trackedBox, uid imap.UID, flags []imap.Flag, modSeq uint64) ([]imap.Flag, uint64, bool, error) {
	if sess.storedGone[uint32(uid)] {
		return nil, 0, false, nil
	}
	if modSeq >= sess.toldModSeq {
		return flags, modSeq, true, nil
	}
	box.mu.Lock()
	i, ok := box.find(uint32(uid))
	var m *mailbox.Message
	if ok {
		m = box.msgs[i]
	}
	box.mu.Unlock()
	if !ok {
		return nil, 0, false, nil
	}
	if m.ModSeq < modSeq {
		return flags, modSeq, true, nil
	}
	if err := sess.announceKeywords(); err != nil {
		return nil, 0, false, err
	}
	sess.told(m.ModSeq)
	return imapFlags(m.Flags), m.ModSeq, true, nil
}

// told records that the client was shown a message state of MODSEQ ms.
func (sess *session) told(ms uint64) { sess.toldModSeq = max(sess.toldModSeq, ms) }

func (sess *session) Unselect() error {
	sess.unselect()
	return nil
}

func (sess *session) unselect() {
	sess.contexts = nil // RFC 5267 section 4.3: updates end with the selection
	if sess.box != nil {
		sess.storeRecentClaims(sess.box)
		sess.recentMu.Lock()
		sess.recent = nil
		sess.recentMu.Unlock()
		sess.srv.release(sess.box, sess.tracker)
		sess.box, sess.tracker = nil, nil
		sess.mboxID, sess.mboxName = 0, ""
	}
}

func (sess *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if err := sess.poll(w, allowExpunge); err != nil {
		return err
	}
	return sess.deliverNotify(w) // notify.go
}

func (sess *session) poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if sess.tracker == nil {
		return nil
	}
	sess.claimNew() // recent.go
	if sess.deferNew {
		// Thunderbird ignores an EXISTS for its own folder inside the
		// response to its own MOVE or COPY, and next looks at the folder
		// minutes later: a released message would stay unseen. The
		// MOVE's EXPUNGEs are written now; the EXISTS waits for the next
		// poll, which IDLE runs as it starts.
		sess.deferNew = false
		if err := sess.tracker.PollDeferringNew(w); err != nil {
			return err
		}
		if err := sess.reportRecent(w); err != nil {
			return err
		}
		return sess.updateContexts(w)
	}
	if err := sess.tracker.Poll(w, allowExpunge); err != nil {
		return err
	}
	if err := sess.reportRecent(w); err != nil {
		return err
	}
	return sess.updateContexts(w)
}

func (sess *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	// With NOTIFY, events of other mailboxes wake IDLE too (notify.go).
	var notified chan struct{}
	if sess.notifier != nil {
		notified = sess.notifier.wake
	}
	if sess.tracker == nil {
		for {
			if err := sess.deliverNotify(w); err != nil {
				return err
			}
			select {
			case <-notified:
			case <-stop:
				return nil
			}
		}
	}
	// Not SessionTracker.Idle: it starts listening for updates only
	// when it runs, after the "+ idling" response, and does not poll
	// first, so a change committed in between (a delivery right after the
	// client saw "+") stayed queued, unannounced, until the next change.
	// Here the wake-up channel is registered first and the queue polled
	// after, so nothing falls in the gap.
	box := sess.box
	wake := make(chan struct{}, 1)
	box.mu.Lock()
	if box.idlers == nil {
		box.idlers = make(map[chan struct{}]struct{})
	}
	box.idlers[wake] = struct{}{}
	box.mu.Unlock()
	defer func() {
		box.mu.Lock()
		delete(box.idlers, wake)
		box.mu.Unlock()
	}()
	for {
		sess.claimNew() // recent.go
		if err := sess.tracker.Poll(w, true); err != nil {
			return err
		}
		if err := sess.reportRecent(w); err != nil {
			return err
		}
		if err := sess.updateContexts(w); err != nil {
			return err
		}
		if err := sess.deliverNotify(w); err != nil {
			return err
		}
		select {
		case <-wake:
		case <-notified:
		case <-stop:
			return nil
		}
	}
}

// storeError turns store errors into IMAP responses with response codes
// a client can act on; anything else stays an internal error.
func storeError(err error) error {
	if err == nil {
		return nil
	}
	var code imap.ResponseCode
	switch {
	case errors.Is(err, mailbox.ErrDiskFull):
		// Dovecot's answer to ENOSPC too (RFC 5530 OVERQUOTA); the text
		// says it is the server's disk, not the user's quota, and
		// leaves free-space figures to the log.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota,
			Text: "not enough disk space: the mail store's disk is full, try again later"}
	case errors.Is(err, mailbox.ErrOverQuota):
		// RFC 9208 section 4.3: APPEND and COPY past a limit.
		code = imap.ResponseCodeOverQuota
	case errors.Is(err, mailbox.ErrNoMailbox):
		code = imap.ResponseCodeNonExistent
	case errors.Is(err, mailbox.ErrMailboxExists):
		code = imap.ResponseCodeAlreadyExists
	case errors.Is(err, mailbox.ErrBadName):
		code = imap.ResponseCodeCannot
	case errors.Is(err, mailbox.ErrProtectedMailbox):
		code = imap.ResponseCodeCannot
	case errors.Is(err, mailbox.ErrTooManyMailboxes):
		code = imap.ResponseCodeLimit
	case errors.Is(err, mailbox.ErrNoMessage):
		code = imap.ResponseCodeNonExistent
	default:
		return err
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: responseText(err.Error())}
}

// timeDate drops the time of day, as SEARCH date criteria compare dates.
func timeDate(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
