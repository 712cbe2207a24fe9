package imapsrv

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/mailbox"
)

func (sess *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	targets := sess.resolve(numSet)
	if uidSet, ok := numSet.(imap.UIDSet); ok && options.Vanished {
		// RFC 7162 3.2.6: first the UIDs of the set expunged after
		// CHANGEDSINCE, then the changed messages.
		if imap.IsSearchRes(uidSet) {
			uidSet = sess.searchRes
		}
		if len(uidSet) > 0 { // nil would mean every UID
			vanished, err := sess.vanished(options.ChangedSince, uidSet, nil)
			if err != nil {
				return err
			}
			if err := w.WriteVanishedEarlier(vanished); err != nil {
				return err
			}
		}
	}
	if since := options.ChangedSince; since > 0 {
		// RFC 7162 3.1.4.1: only messages changed after since.
		kept := targets[:0]
		for _, t := range targets {
			if t.msg.ModSeq > since {
				kept = append(kept, t)
			}
		}
		targets = kept
	}
	if p := options.Partial; p != nil {
		// RFC 9394 section 3.3: only the messages at these positions
		// among those the FETCH would answer for.
		from, to := imapserver.PartialWindow(*p, len(targets))
		targets = targets[from:to]
	}
	markSeen := false
	if !sess.readOnly {
		for _, bs := range options.BodySection {
			if !bs.Peek {
				markSeen = true
			}
		}
		for _, bs := range options.BinarySection {
			if !bs.Peek {
				markSeen = true
			}
		}
	}
	if markSeen {
		var unseen []uint32
		for _, t := range targets {
			if !t.msg.HasFlag(mailbox.FlagSeen) {
				unseen = append(unseen, t.msg.UID)
			}
		}
		if len(unseen) > 0 {
			changed, err := sess.setFlags(unseen, mailbox.FlagsAdd, []string{mailbox.FlagSeen})
			if errors.Is(err, mailbox.ErrDiskFull) {
				// Reading goes on when the disk is full; the message
				// stays unseen, as it would under EXAMINE.
				sess.log.Warn("fetch: \\Seen not set: disk full", "account", sess.acct, "err", err)
				changed, err = nil, nil
			}
			if err != nil {
				return fmt.Errorf("setting \\Seen: %w", err)
			}
			byUID := make(map[uint32]*mailbox.Message, len(changed))
			for _, m := range changed {
				byUID[m.UID] = m
			}
			for i, t := range targets {
				if m := byUID[t.msg.UID]; m != nil {
					targets[i].msg = m
				}
			}
			// The client must learn the new flags (RFC 9051 6.4.5).
			options.Flags = true
		}
	}
	if options.Flags && sess.conn != nil && sess.conn.CondStoreEnabled() {
		// RFC 7162 3.1: once CONDSTORE is enabled, FETCH responses that
		// carry FLAGS carry MODSEQ too.
		options.ModSeq = true
	}
	if options.Flags {
		if err := sess.announceKeywords(); err != nil {
			return err
		}
	}
	if options.Flags || options.ModSeq {
		for _, t := range targets {
			sess.told(t.msg.ModSeq)
		}
	}
	return sess.writeFetch(w, targets, options)
}

// headerOnly reports whether every section o asks for is in the
// message's header (BODY[HEADER], BODY[HEADER.FIELDS (...)] and .NOT).
func headerOnly(o *imap.FetchOptions) bool {
	if len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 {
		return false
	}
	for _, bs := range o.BodySection {
		if len(bs.Part) > 0 || bs.Specifier != imap.PartSpecifierHeader {
			return false
		}
	}
	return true
}

func needsRaw(o *imap.FetchOptions) bool {
	return len(o.BodySection) > 0 || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0
}

// fetchBatch is what a run of FETCH responses needs from the store, read
// together (readFetchBatch): the messages' bytes (their headers only, for
// a FETCH of header sections) and summaries, by blob. A message missing
// from raw was expunged meanwhile.
type fetchBatch struct {
	raw, sum map[uint64][]byte
}

// readFetchBatch reads what fetchOne needs of targets with options, in
// one read of bytes and one of summaries (mailbox.Store.ReadRaws and
// ReadSummaries: on PostgreSQL a round trip each, not one per message).
func (sess *session) readFetchBatch(targets []target, options *imap.FetchOptions) (*fetchBatch, error) {
	b := &fetchBatch{}
	blobs := make([]uint64, len(targets))
	for i, t := range targets {
		blobs[i] = t.msg.Blob
	}
	if needsRaw(options) {
		b.raw = make(map[uint64][]byte, len(targets))
		header := headerOnly(options)
		err := sess.srv.store.ReadRaws(blobs, func(i int, v []byte) error {
			if header {
				v = v[:headerLen(v)]
			}
			b.raw[blobs[i]] = bytes.Clone(v)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading messages: %w", err)
		}
	}
	if options.Envelope || options.BodyStructure != nil {
		b.sum = make(map[uint64][]byte, len(targets))
		err := sess.srv.store.ReadSummaries(blobs, func(i int, v []byte) error {
			b.sum[blobs[i]] = bytes.Clone(v)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading message summaries: %w", err)
		}
	}
	return b, nil
}

// fetchOne writes one message's FETCH response; pre, if not nil, holds
// what it needs from the store (readFetchBatch).
func (sess *session) fetchOne(w *imapserver.FetchWriter, t target, options *imap.FetchOptions, recent func(uid uint32) bool, pre *fetchBatch) error {
	m := t.msg
	var raw []byte
	var sum *summary
	full := raw // the whole message, if read
	if needsRaw(options) && pre != nil {
		var ok bool
		if raw, ok = pre.raw[m.Blob]; !ok {
			return nil // expunged meanwhile by another session
		}
		if !headerOnly(options) {
			full = raw
		}
	} else if needsRaw(options) {
		var err error
		if headerOnly(options) {
			// A client listing a folder asks for a few header fields:
			// copy the header out of the store, not the whole message.
			err = sess.srv.store.ReadRaw(m.Blob, func(v []byte) error {
				raw = bytes.Clone(v[:headerLen(v)])
				return nil
			})
		} else {
			raw, err = sess.srv.store.Raw(m.Blob)
			full = raw
		}
		if err != nil {
			if errors.Is(err, mailbox.ErrNoMessage) {
				return nil // expunged meanwhile by another session
			}
			return fmt.Errorf("reading message %d: %w", m.UID, err)
		}
	}
	if options.Envelope || options.BodyStructure != nil {
		var err error
		if pre != nil {
			sum, err = sess.summaryOf(m, pre.sum[m.Blob], full)
		} else {
			sum, err = sess.summary(m, full)
		}
		if err != nil {
			if errors.Is(err, mailbox.ErrNoMessage) {
				return nil
			}
			return err
		}
	}
	// BINARY sections are decoded before the response starts: a part
	// the server cannot decode fails the command (binary.go).
	bins, binSizes, err := binarySections(raw, options)
	if err != nil {
		return err
	}
	rw := w.CreateMessage(t.seq)
	rw.WriteUID(imap.UID(m.UID))
	if options.Flags {
		rw.WriteFlags(withRecent(m, recent))
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if options.ModSeq {
		rw.WriteModSeq(m.ModSeq)
	}
	if options.EmailID { // RFC 8474 5 (objectid.go)
		rw.WriteEmailID(EmailObjectID(m.Blob))
	}
	if options.ThreadID {
		rw.WriteThreadID("")
	}
	if options.SaveDate { // RFC 8514 4.3 (savedate.go)
		rw.WriteSaveDate(m.SaveDate())
	}
	if options.Preview { // RFC 8970 (preview.go)
		text, ok, err := sess.preview(m, sum, full, options.PreviewLazy)
		if errors.Is(err, mailbox.ErrNoMessage) {
			return nil
		}
		if err != nil {
			return err
		}
		rw.WritePreview(text, ok)
	}
	if options.Envelope {
		rw.WriteEnvelope(sum.Envelope)
	}
	if options.BodyStructure != nil {
		// The writer drops the extension data for BODY itself.
		rw.WriteBodyStructure(sum.BodyStructure)
	}
	for _, bs := range options.BodySection {
		buf := bodySection(raw, bs)
		if err := writeLiteral(rw.WriteBodySection(bs, int64(len(buf))), buf); err != nil {
			return err
		}
	}
	for i, bs := range options.BinarySection {
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(bins[i]))), bins[i]); err != nil {
			return err
		}
	}
	for i, bss := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(bss, binSizes[i])
	}
	return rw.Close()
}

// bodySection is the section bs of the message raw, as FETCH BODY[...]
// gives it (and CATENATE's URLs take it, catenate.go).
func bodySection(raw []byte, bs *imap.FetchItemBodySection) []byte {
	// The whole message, its header and its text come from the
	// stored bytes (see rawmsg.go); parts and header fields from the
	// parsed message, retried with its well-formed header fields only
	// if it has broken ones.
	buf, ok := wholeSection(raw, bs)
	if !ok {
		buf, ok = headerFieldsSection(raw, bs)
	}
	if !ok && len(bs.Part) > maxMIMEDepth+1 {
		// Deeper than BODYSTRUCTURE shows (see maxMIMEDepth):
		// walking there costs depth times size.
		buf, ok = nil, true
	}
	if !ok {
		buf = imapserver.ExtractBodySection(bytes.NewReader(raw), bs)
		if buf == nil {
			if p := parseable(raw); len(p) != len(raw) || !bytes.Equal(p, raw) {
				buf = imapserver.ExtractBodySection(bytes.NewReader(p), bs)
			}
		}
	}
	return buf
}

func writeLiteral(wc interface {
	Write([]byte) (int, error)
	Close() error
}, buf []byte) error {
	_, werr := wc.Write(buf)
	cerr := wc.Close()
	return errors.Join(werr, cerr)
}

// summary returns the message's precomputed envelope and body structure,
// computing them for messages stored without one.
func (sess *session) summary(m *mailbox.Message, raw []byte) (*summary, error) {
	b, err := sess.srv.store.Summary(m.Blob)
	if err != nil {
		return nil, err
	}
	return sess.summaryOf(m, b, raw)
}

// summaryOf is summary with the stored summary b already read (nil: none
// stored).
func (sess *session) summaryOf(m *mailbox.Message, b, raw []byte) (*summary, error) {
	var err error
	if s, err := decodeSummary(b); err == nil {
		return s, nil
	}
	if raw == nil {
		if raw, err = sess.srv.store.Raw(m.Blob); err != nil {
			return nil, err
		}
	}
	return computeSummary(raw), nil
}

func (sess *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	if sess.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "mailbox is read-only (EXAMINE)"}
	}
	// gone: messages the client names that another session expunged,
	// which it has not been told of (no EXPUNGE during a STORE, RFC 9051
	// 7.5.1), read with targets under one lock so each message is in
	// exactly one of them.
	box := sess.box
	box.mu.Lock()
	targets := sess.resolveLocked(numSet)
	gone := sess.goneLocked(numSet)
	box.mu.Unlock()
	var op mailbox.FlagOp
	switch flags.Op {
	case imap.StoreFlagsSet:
		op = mailbox.FlagsReplace
	case imap.StoreFlagsAdd:
		op = mailbox.FlagsAdd
	case imap.StoreFlagsDel:
		op = mailbox.FlagsRemove
	default:
		return fmt.Errorf("unknown STORE operation %v", flags.Op)
	}
	list := make([]string, len(flags.Flags))
	for i, f := range flags.Flags {
		list[i] = string(f)
	}
	var changed []*mailbox.Message
	var modified map[uint32]bool
	if len(targets) > 0 {
		var err error
		// UNCHANGEDSINCE 0 is a test too, one every message fails (RFC
		// 7162 3.1.3: every message has a MODSEQ of at least 1).
		if options.HasUnchangedSince || options.UnchangedSince > 0 {
			changed, modified, err = sess.setFlagsUnchangedSince(uids(targets), op, list, options.UnchangedSince)
		} else {
			changed, err = sess.setFlags(uids(targets), op, list)
		}
		if err != nil {
			return storeError(fmt.Errorf("storing flags: %w", err))
		}
	}
	if sess.srv.afterStore != nil {
		sess.srv.afterStore()
	}
	// Once CONDSTORE is enabled, FETCH responses carry MODSEQ, and a
	// .SILENT STORE still reports the MODSEQ of what it changed (RFC 7162
	// 3.1.3, 3.2).
	condStore := sess.conn != nil && sess.conn.CondStoreEnabled()
	// Every keyword a STORE names is in FLAGS after it, as in Dovecot,
	// whether or not a message has it now: a -FLAGS of one the client
	// has not seen in FLAGS (another session added it meanwhile) and the
	// FETCH of a gone message below would name keywords FLAGS does not
	// list (RFC 9051 7.3.5: FLAGS lists the flags applicable). imaptest
	// reports "STORE didn't create keyword" for a -FLAGS of a keyword
	// new to the client.
	box.mu.Lock()
	if box.addKeywords(list) {
		box.tracker.QueueMailboxFlagsChanged()
	}
	box.mu.Unlock()
	if !flags.Silent {
		if err := sess.announceKeywords(); err != nil {
			return err
		}
	}
	byUID := make(map[uint32]*mailbox.Message, len(changed))
	for _, m := range changed {
		byUID[m.UID] = m
	}
	recent := sess.recentTest()
	for _, t := range targets {
		m := t.msg
		c := byUID[m.UID]
		if c != nil {
			// Even .SILENT: the client knows what it stored.
			m = c
			sess.told(m.ModSeq)
		}
		if modified[m.UID] || flags.Silent && (!condStore || c == nil) {
			continue
		}
		sess.told(m.ModSeq)
		rw := w.CreateMessage(t.seq)
		rw.WriteUID(imap.UID(m.UID))
		if !flags.Silent {
			rw.WriteFlags(withRecent(m, recent))
		}
		if condStore {
			rw.WriteModSeq(m.ModSeq)
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	// A gone message is answered as Dovecot answers it: its last flags
	// with the change made, as if the STORE came just before the
	// expunge, which the client hears of at its next command (RFC 2180
	// 4.2 leaves the answer to the server). Leaving it out made the
	// STORE's OK claim a change the client saw no FETCH for (imaptest:
	// "STORE didn't return FETCH FLAGS"). Nothing is stored: the record
	// is gone. A .SILENT STORE changed nothing there to report, and an
	// UNCHANGEDSINCE test the message fails names it in MODIFIED.
	for _, t := range gone {
		if (options.HasUnchangedSince || options.UnchangedSince > 0) && t.msg.ModSeq > options.UnchangedSince {
			if modified == nil {
				modified = make(map[uint32]bool)
			}
			modified[t.msg.UID] = true
			targets = append(targets, t) // for the MODIFIED set below
			continue
		}
		if flags.Silent {
			continue
		}
		// A flag change queued before the expunge is older than this
		// answer: it is not written after it (rewriteQueuedFlags).
		if sess.storedGone == nil {
			sess.storedGone = make(map[uint32]bool)
		}
		sess.storedGone[t.msg.UID] = true
		m := *t.msg
		m.Flags = op.Apply(m.Flags, list)
		rw := w.CreateMessage(t.seq)
		rw.WriteUID(imap.UID(m.UID))
		rw.WriteFlags(withRecent(&m, recent))
		if condStore {
			rw.WriteModSeq(m.ModSeq)
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	if len(modified) > 0 {
		// RFC 7162 3.1.3: OK [MODIFIED set] names the messages that
		// failed the UNCHANGEDSINCE test, by UID for UID STORE.
		var set imap.NumSet
		if _, isUID := numSet.(imap.UIDSet); isUID {
			var us imap.UIDSet
			for _, t := range targets {
				if modified[t.msg.UID] {
					us.AddNum(imap.UID(t.msg.UID))
				}
			}
			set = us
		} else {
			var ss imap.SeqSet
			for _, t := range targets {
				if modified[t.msg.UID] {
					ss.AddNum(t.seq)
				}
			}
			set = ss
		}
		return &imap.Error{Type: imap.StatusResponseTypeOK, Code: imap.ResponseCode("MODIFIED " + set.String()),
			Text: "Conditional STORE failed for some messages"}
	}
	return nil
}

func (sess *session) Expunge(w *imapserver.ExpungeWriter, uidSet *imap.UIDSet) error {
	if sess.readOnly {
		// CLOSE calls Expunge too, with a writer that is not attached to
		// the connection (the zero ExpungeWriter), and CLOSE of a mailbox
		// opened with EXAMINE must succeed without expunging
		// (RFC 9051 6.4.1). Only EXPUNGE and UID EXPUNGE are refused.
		if w != nil && *w == (imapserver.ExpungeWriter{}) {
			return nil
		}
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "mailbox is read-only (EXAMINE)"}
	}
	var doomed []uint32
	sess.box.mu.Lock()
	for _, m := range sess.box.msgs {
		if m.HasFlag(mailbox.FlagDeleted) && (uidSet == nil || uidSet.Contains(imap.UID(m.UID))) {
			doomed = append(doomed, m.UID)
		}
	}
	sess.box.mu.Unlock()
	if len(doomed) == 0 {
		return nil
	}
	// The EXPUNGE responses reach this session, like every other, through
	// its tracker, which the server polls before the tagged OK.
	for len(doomed) > 0 {
		n := min(len(doomed), flagBatch)
		if err := sess.srv.store.UpdateFrom(sess.tracker, func(tx *mailbox.Tx) error {
			_, err := tx.Expunge(sess.acct, sess.mboxID, doomed[:n])
			return err
		}); err != nil {
			return storeError(err)
		}
		doomed = doomed[n:]
	}
	return nil
}

// flagBatch bounds how many messages one transaction changes: Badger
// refuses a transaction larger than a fraction of its memtable, and a
// STORE or EXPUNGE over a whole large mailbox ("mark all as read" in a
// folder of 100,000 messages) failed with an internal error. STORE and
// EXPUNGE need not be atomic (RFC 9051 leaves a partial STORE to the
// server); each batch is announced to other sessions as it commits.
const flagBatch = 1000

// setFlags applies a flag change to uids, in batches of flagBatch.
func (sess *session) setFlags(uids []uint32, op mailbox.FlagOp, flags []string) ([]*mailbox.Message, error) {
	var changed []*mailbox.Message
	for len(uids) > 0 {
		n := min(len(uids), flagBatch)
		// The transaction may run more than once (another node's
		// commit conflicting with it): what it returns is kept only
		// from the run that committed.
		var c []*mailbox.Message
		err := sess.srv.store.UpdateFrom(sess.tracker, func(tx *mailbox.Tx) error {
			var err error
			c, err = tx.SetFlags(sess.acct, sess.mboxID, uids[:n], op, flags)
			return err
		})
		if err != nil {
			return changed, err
		}
		changed = append(changed, c...)
		uids = uids[n:]
	}
	return changed, nil
}

// setFlagsUnchangedSince is setFlags with STORE's UNCHANGEDSINCE test,
// made in each batch's transaction; it returns the UIDs that failed it.
func (sess *session) setFlagsUnchangedSince(uids []uint32, op mailbox.FlagOp, flags []string, since uint64) ([]*mailbox.Message, map[uint32]bool, error) {
	var changed []*mailbox.Message
	modified := make(map[uint32]bool)
	for len(uids) > 0 {
		n := min(len(uids), flagBatch)
		var c []*mailbox.Message
		var mod []uint32
		err := sess.srv.store.UpdateFrom(sess.tracker, func(tx *mailbox.Tx) error {
			var err error
			c, mod, err = tx.SetFlagsUnchangedSince(sess.acct, sess.mboxID, uids[:n], op, flags, since)
			return err
		})
		if err != nil {
			return changed, modified, err
		}
		changed = append(changed, c...)
		for _, u := range mod {
			modified[u] = true
		}
		uids = uids[n:]
	}
	return changed, modified, nil
}

func (sess *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	targets := sess.resolve(numSet)
	if sess.hooked(dest) {
		res, err := sess.srv.opts.Hooks.Consign(sess.acct, sess.password, sess.tracker, dest, targetMessages(targets))
		if err != nil {
			return nil, hookError(err)
		}
		sess.deferNew = true // see Poll
		return copyData(res), nil
	}
	var res *mailbox.CopyResult
	err := sess.srv.store.UpdateFrom(sess.tracker, func(tx *mailbox.Tx) error {
		var err error
		res, err = tx.Copy(sess.acct, sess.mboxID, uids(targets), dest)
		return err
	})
	if err != nil {
		return nil, destError(err)
	}
	if err := sess.srv.store.Sync(); err != nil {
		return nil, fmt.Errorf("syncing store: %w", err)
	}
	return copyData(res), nil
}

func (sess *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	if sess.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "mailbox is read-only (EXAMINE)"}
	}
	targets := sess.resolve(numSet)
	if sess.hooked(dest) {
		// The hook withdraws the stubs itself; their EXPUNGEs follow
		// through the tracker, as for a plain MOVE.
		res, err := sess.srv.opts.Hooks.Consign(sess.acct, sess.password, sess.tracker, dest, targetMessages(targets))
		if err != nil {
			return hookError(err)
		}
		sess.deferNew = true // see Poll
		return w.WriteCopyData(copyData(res))
	}
	var res *mailbox.CopyResult
	err := sess.srv.store.UpdateFrom(sess.tracker, func(tx *mailbox.Tx) error {
		var err error
		res, err = tx.Move(sess.acct, sess.mboxID, uids(targets), dest)
		return err
	})
	if err != nil {
		return destError(err)
	}
	if err := sess.srv.store.Sync(); err != nil {
		return fmt.Errorf("syncing store: %w", err)
	}
	// EXPUNGE responses follow through the tracker (see Expunge).
	return w.WriteCopyData(copyData(res))
}

func copyData(res *mailbox.CopyResult) *imap.CopyData {
	if len(res.SourceUIDs) == 0 {
		return nil // nothing copied: no COPYUID (RFC 4315 allows omitting it)
	}
	var src, dst imap.UIDSet
	for i := range res.SourceUIDs {
		src.AddNum(imap.UID(res.SourceUIDs[i]))
		dst.AddNum(imap.UID(res.DestUIDs[i]))
	}
	return &imap.CopyData{UIDValidity: res.UIDValidity, SourceUIDs: src, DestUIDs: dst}
}

// destError adds TRYCREATE when the target mailbox of COPY, MOVE or
// APPEND does not exist, so clients offer to create it.
func destError(err error) error {
	if errors.Is(err, mailbox.ErrNoMailbox) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: responseText(err.Error())}
	}
	return storeError(err)
}
