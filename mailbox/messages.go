package mailbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"certmail/kv"
)

var errStopScan = errors.New("stop scan")

func jsonUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding record: %w", err)
	}
	return nil
}

type blobRecord struct {
	Refs int   `json:"r"`
	Size int64 `json:"s"`
}

// Message records are stored in a compact binary form whose first byte
// is its version; records written before it are JSON, whose first byte is
// '{', and are still read. JSON cost a third of the CPU of a flag change
// and of loading a mailbox's index, and three times the space.
// Version 2 adds the MODSEQ after the version byte; version 1 records
// read as MODSEQ 1 (legacyModSeq). Version 3 adds the save date (Saved)
// after the flags; older records read as 0.
const (
	messageRecordV1 = 1
	messageRecordV2 = 2
	messageRecordV3 = 3
)

func encodeMessage(m *Message) []byte {
	b := make([]byte, 0, 40+8*len(m.Flags))
	b = append(b, messageRecordV3)
	b = binary.AppendUvarint(b, m.ModSeq)
	b = binary.AppendUvarint(b, uint64(m.UID))
	b = binary.AppendVarint(b, m.Size)
	b = binary.AppendVarint(b, m.InternalDate.Unix())
	_, off := m.InternalDate.Zone()
	b = binary.AppendVarint(b, int64(off))
	var seen int64
	if !m.SeenAt.IsZero() {
		seen = m.SeenAt.UnixNano()
	}
	b = binary.AppendVarint(b, seen)
	b = binary.AppendUvarint(b, m.Blob)
	b = binary.AppendUvarint(b, uint64(len(m.Flags)))
	for _, f := range m.Flags {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return binary.AppendVarint(b, m.Saved)
}

var errBadRecord = errors.New("malformed message record")

func decodeMessage(b []byte, m *Message) error {
	if len(b) > 0 && b[0] == '{' {
		if err := jsonUnmarshal(b, m); err != nil {
			return err
		}
		m.ModSeq = max(m.ModSeq, legacyModSeq)
		return nil
	}
	if len(b) == 0 || b[0] != messageRecordV1 && b[0] != messageRecordV2 && b[0] != messageRecordV3 {
		return fmt.Errorf("decoding record: %w (version %v)", errBadRecord, b[:min(1, len(b))])
	}
	version := b[0]
	b = b[1:]
	bad := false
	uvar := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	svar := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	modseq := uint64(legacyModSeq)
	if version >= messageRecordV2 {
		modseq = uvar()
	}
	uid := uvar()
	size := svar()
	date := svar()
	off := svar()
	seen := svar()
	blob := uvar()
	nflags := uvar()
	if bad || uid > 1<<32-1 || nflags > uint64(len(b)) {
		return fmt.Errorf("decoding record: %w", errBadRecord)
	}
	*m = Message{UID: uint32(uid), Size: size, Blob: blob, ModSeq: modseq}
	if off == 0 {
		m.InternalDate = time.Unix(date, 0).UTC()
	} else {
		m.InternalDate = time.Unix(date, 0).In(time.FixedZone("", int(off)))
	}
	if seen != 0 {
		m.SeenAt = time.Unix(0, seen).UTC()
	}
	if nflags > 0 {
		m.Flags = make([]string, 0, nflags)
		for i := uint64(0); i < nflags; i++ {
			n := uvar()
			if bad || n > uint64(len(b)) {
				return fmt.Errorf("decoding record: %w", errBadRecord)
			}
			m.Flags = append(m.Flags, flagString(b[:n]))
			b = b[n:]
		}
	}
	if version >= messageRecordV3 {
		if m.Saved = svar(); bad {
			return fmt.Errorf("decoding record: %w", errBadRecord)
		}
	}
	if len(b) != 0 {
		return fmt.Errorf("decoding record: %w (trailing bytes)", errBadRecord)
	}
	return nil
}

// flagString returns a flag's bytes as a string, without an allocation
// for the system flags, which most records carry: a mailbox of 100,000
// read messages loads 100,000 fewer.
func flagString(b []byte) string {
	switch string(b) { // compared without converting
	case FlagSeen:
		return FlagSeen
	case FlagAnswered:
		return FlagAnswered
	case FlagFlagged:
		return FlagFlagged
	case FlagDeleted:
		return FlagDeleted
	case FlagDraft:
		return FlagDraft
	}
	return string(b)
}

// PutBlob stores message bytes once, with one reference held by the
// caller: a held certified item is a blob no mailbox refers to yet.
func (tx *Tx) PutBlob(raw []byte) (uint64, error) { return tx.PutBlobSummary(raw, nil) }

// Summarize computes what Options.Summarize derives from a message (nil
// without a summarizer). Callers that store a message compute it before
// their transaction and hand it to PutBlobSummary, so that parsing the
// message does not hold the store's write lock.
func (s *Store) Summarize(raw []byte) []byte {
	if s.summarize == nil {
		return nil
	}
	return s.summarize(raw)
}

// PutBlobSummary is PutBlob with the summary computed beforehand by
// Store.Summarize; a nil sum is computed here.
func (tx *Tx) PutBlobSummary(raw, sum []byte) (uint64, error) {
	// Every message stored passes here (delivery, APPEND, submissions,
	// stubs, forwarded copies): one place refuses them on a full disk.
	if err := tx.s.space.forMessage(int64(len(raw) + len(sum))); err != nil {
		return 0, err
	}
	id, err := tx.s.blobIDs.take(tx.s.db)
	if err != nil {
		return 0, err
	}
	if err := tx.set(blobKey(prefixRaw, id), raw); err != nil {
		return 0, err
	}
	if tx.s.summarize != nil {
		if sum == nil {
			sum = tx.s.summarize(raw)
		}
		if err := tx.set(blobKey(prefixSummary, id), sum); err != nil {
			return 0, err
		}
	}
	return id, tx.setJSON(blobKey(prefixBlob, id), &blobRecord{Refs: 1, Size: int64(len(raw))})
}

func (tx *Tx) blob(id uint64) (*blobRecord, error) {
	var b blobRecord
	ok, err := tx.getJSON(blobKey(prefixBlob, id), &b)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("blob %d: %w", id, ErrNoMessage)
	}
	return &b, nil
}

// RefBlob adds a reference to a blob.
func (tx *Tx) RefBlob(id uint64) error {
	b, err := tx.blob(id)
	if err != nil {
		return err
	}
	b.Refs++
	return tx.setJSON(blobKey(prefixBlob, id), b)
}

// UnrefBlob drops a reference, deleting the bytes with the last one.
func (tx *Tx) UnrefBlob(id uint64) error {
	b, err := tx.blob(id)
	if err != nil {
		return err
	}
	b.Refs--
	if b.Refs > 0 {
		return tx.setJSON(blobKey(prefixBlob, id), b)
	}
	for _, p := range []string{prefixBlob, prefixRaw, prefixSummary} {
		if err := tx.del(blobKey(p, id)); err != nil {
			return err
		}
	}
	return nil
}

// BlobBytes returns a blob's bytes.
func (tx *Tx) BlobBytes(id uint64) ([]byte, error) {
	raw, err := tx.txn.Get(blobKey(prefixRaw, id), nil)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, fmt.Errorf("blob %d: %w", id, ErrNoMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("reading blob %d: %w", id, err)
	}
	return raw, nil
}

// BlobSummary returns the blob's derived summary (nil if none).
func (tx *Tx) BlobSummary(id uint64) ([]byte, error) {
	sum, err := tx.txn.Get(blobKey(prefixSummary, id), nil)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading summary %d: %w", id, err)
	}
	return sum, nil
}

// Append stores a new message in a mailbox. The UID is allocated in the
// same transaction.
func (tx *Tx) Append(acct, mailbox string, raw []byte, opts AppendOptions) (*AppendResult, error) {
	// Looked up before the bytes are stored, and only once (on
	// PostgreSQL a read is a round trip).
	mb, err := tx.Mailbox(acct, mailbox)
	if err != nil {
		return nil, err
	}
	id, err := tx.PutBlobSummary(raw, opts.Summary)
	if err != nil {
		return nil, err
	}
	res, err := tx.appendBlob(acct, mb, id, opts)
	if err != nil {
		return nil, err
	}
	// AppendBlob took its own reference; drop PutBlob's.
	return res, tx.UnrefBlob(id)
}

// AppendBlob adds a message referring to an existing blob.
func (tx *Tx) AppendBlob(acct, mailbox string, blob uint64, opts AppendOptions) (*AppendResult, error) {
	mb, err := tx.Mailbox(acct, mailbox)
	if err != nil {
		return nil, err
	}
	return tx.appendBlob(acct, mb, blob, opts)
}

// AppendBlobTo is AppendBlob into the mailbox whose record mb the caller
// has just read in this transaction (tx.Mailbox), sparing a second read.
func (tx *Tx) AppendBlobTo(acct string, mb *MailboxInfo, blob uint64, opts AppendOptions) (*AppendResult, error) {
	return tx.appendBlob(acct, mb, blob, opts)
}

// appendBlob is AppendBlob into the mailbox whose record is mb.
func (tx *Tx) appendBlob(acct string, mb *MailboxInfo, blob uint64, opts AppendOptions) (*AppendResult, error) {
	// The account's usage and the mailbox's MODSEQ state, read below
	// one at a time, in one round trip on a shared engine.
	if err := tx.prefetchAppend(acct, mb.ID); err != nil {
		return nil, err
	}
	b, err := tx.blob(blob)
	if err != nil {
		return nil, err
	}
	date := opts.InternalDate
	if date.IsZero() {
		date = now()
	}
	flags, _ := applyFlags(nil, FlagsReplace, opts.Flags)
	m := &Message{
		UID:          mb.UIDNext,
		Flags:        flags,
		Size:         b.Size,
		InternalDate: date.Truncate(time.Second),
		Blob:         blob,
	}
	if m.HasFlag(FlagSeen) {
		m.SeenAt = now()
	}
	if !opts.QuotaExempt {
		if err := tx.CheckQuota(acct, m.Size, 1); err != nil {
			return nil, err
		}
	}
	return tx.insert(acct, mb, m)
}

// prefetchAppend reads ahead, on a shared engine (PostgreSQL), what
// adding a message to mailbox mboxID of acct reads after the mailbox's
// record (quota.go's usage, modseq.go's state), unless the transaction
// has them already.
func (tx *Tx) prefetchAppend(acct string, mboxID uint32) error {
	if !tx.s.shared {
		return nil
	}
	var keys [][]byte
	if m := tx.usageMemo; m == nil || m.acct != acct {
		keys = append(keys, usageKey(acct))
	}
	if tx.modseqs.get(mboxRef{acct, mboxID}) == nil {
		keys = append(keys, modseqStateKey(acct, mboxID))
	}
	if len(keys) < 2 {
		return nil // one read either way
	}
	return tx.w.prefetch(keys...)
}

// prefetchBatch is how many message records a loop over UIDs reads ahead
// at a time (prefetchMessages).
const prefetchBatch = 1000

// prefetchMessages reads ahead, on a shared engine (PostgreSQL), the
// records of uids[i:] that a loop reading them one by one is about to
// read, prefetchBatch at a time (when i is at a batch's start), and the
// first time the mailbox's MODSEQ state, which a change then reads: a
// STORE of one message is one round trip before its commit, not two, and
// of 300 messages one, not 301.
func (tx *Tx) prefetchMessages(acct string, mboxID uint32, uids []uint32, i int) error {
	if !tx.s.shared || i%prefetchBatch != 0 || len(uids) == 0 {
		return nil
	}
	batch := uids[i:min(len(uids), i+prefetchBatch)]
	keys := make([][]byte, 0, len(batch)+1)
	for _, uid := range batch {
		keys = append(keys, messageKey(acct, mboxID, uid))
	}
	if i == 0 && tx.modseqs.get(mboxRef{acct, mboxID}) == nil {
		keys = append(keys, modseqStateKey(acct, mboxID))
	}
	if len(keys) < 2 {
		return nil // one read either way
	}
	return tx.w.prefetch(keys...)
}

// prefetchRemoval is prefetchMessages for a loop removing messages
// (removeMessage): their blobs' records, the account's usage and the
// mailbox's MODSEQ state, which each removal reads.
func (tx *Tx) prefetchRemoval(acct string, mboxID uint32, gone []*Message, i int) error {
	if !tx.s.shared || i%prefetchBatch != 0 || len(gone) == 0 {
		return nil
	}
	batch := gone[i:min(len(gone), i+prefetchBatch)]
	keys := make([][]byte, 0, len(batch)+2)
	for _, m := range batch {
		keys = append(keys, blobKey(prefixBlob, m.Blob))
	}
	if m := tx.usageMemo; m == nil || m.acct != acct {
		keys = append(keys, usageKey(acct))
	}
	if tx.modseqs.get(mboxRef{acct, mboxID}) == nil {
		keys = append(keys, modseqStateKey(acct, mboxID))
	}
	if len(keys) < 2 {
		return nil
	}
	return tx.w.prefetch(keys...)
}

// insert writes m (whose UID must be mb.UIDNext) and takes a blob reference.
func (tx *Tx) insert(acct string, mb *MailboxInfo, m *Message) (*AppendResult, error) {
	st, err := tx.modseq(acct, mb.ID)
	if err != nil {
		return nil, err
	}
	m.ModSeq = st.txModSeq
	// Every record insert makes is a message saved to mb (RFC 8514: an
	// APPEND, a delivery, a COPY or MOVE's new copy).
	m.Saved = now().Unix()
	mb.UIDNext = m.UID + 1
	if err := tx.putMailbox(acct, mb); err != nil {
		return nil, err
	}
	// Counted before the record is written: a counter made from the
	// mailboxes (a store from before counters) must not count it twice.
	if err := tx.addUsage(acct, m.Size, 1); err != nil {
		return nil, err
	}
	if err := tx.set(messageKey(acct, mb.ID, m.UID), encodeMessage(m)); err != nil {
		return nil, err
	}
	if err := tx.RefBlob(m.Blob); err != nil {
		return nil, err
	}
	if err := tx.set(blobRefKey(m.Blob, acct, mb.ID, m.UID), nil); err != nil {
		return nil, err
	}
	if err := tx.s.runInsertHooks(tx, acct, mb, m); err != nil {
		return nil, err
	}
	tx.noteAdded(acct, mb.ID, m.UID)
	s := tx.s
	ref := mboxRef{acct, mb.ID}
	name := mb.Name
	tx.afterCommit(func() []Change {
		c := Change{Kind: MessageAdded, Account: acct, MailboxID: ref.id, Mailbox: name, Message: m, ModSeq: m.ModSeq}
		if bi := s.idx.boxes[ref]; bi != nil {
			c.Seq = bi.put(m)
			c.Count = uint32(len(bi.msgs))
		}
		return []Change{c}
	})
	return &AppendResult{MailboxID: mb.ID, UIDValidity: mb.UIDValidity, UID: m.UID, Blob: m.Blob}, nil
}

// Message returns one message record.
func (tx *Tx) Message(acct string, mboxID, uid uint32) (*Message, error) {
	key := messageKey(acct, mboxID, uid)
	b, err := tx.txn.Get(key, tx.buf)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, fmt.Errorf("message %d: %w", uid, ErrNoMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", key, err)
	}
	tx.buf = b
	var m Message
	if err := decodeMessage(b, &m); err != nil {
		return nil, fmt.Errorf("message %d: %w", uid, err)
	}
	return &m, nil
}

// SetFlags changes the flags of the given messages and returns the new
// records of those that changed. Missing UIDs are skipped (another session
// may have expunged them).
func (tx *Tx) SetFlags(acct string, mboxID uint32, uids []uint32, op FlagOp, flags []string) ([]*Message, error) {
	var changed []*Message
	for i, uid := range uids {
		if err := tx.prefetchMessages(acct, mboxID, uids, i); err != nil {
			return nil, err
		}
		m, err := tx.Message(acct, mboxID, uid)
		if errors.Is(err, ErrNoMessage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		nf, ok := applyFlags(m.Flags, op, flags)
		if !ok {
			continue
		}
		st, err := tx.modseq(acct, mboxID)
		if err != nil {
			return nil, err
		}
		nm := *m
		nm.Flags = nf
		nm.ModSeq = st.txModSeq
		if nm.SeenAt.IsZero() && nm.HasFlag(FlagSeen) {
			nm.SeenAt = now()
		}
		if err := tx.set(messageKey(acct, mboxID, uid), encodeMessage(&nm)); err != nil {
			return nil, err
		}
		if err := tx.s.runFlagHooks(tx, acct, mboxID, m, &nm); err != nil {
			return nil, err
		}
		tx.noteChanged(acct, mboxID, uid)
		changed = append(changed, &nm)
	}
	if len(changed) > 0 {
		s := tx.s
		ref := mboxRef{acct, mboxID}
		tx.afterCommit(func() []Change {
			bi := s.idx.boxes[ref]
			out := make([]Change, 0, len(changed))
			for _, m := range changed {
				c := Change{Kind: MessageFlags, Account: acct, MailboxID: mboxID, Message: m, ModSeq: m.ModSeq}
				if bi != nil {
					c.Seq = bi.put(m)
					c.Count = uint32(len(bi.msgs))
				}
				out = append(out, c)
			}
			return out
		})
	}
	return changed, nil
}

// SetFlagsUnchangedSince is SetFlags for the messages whose MODSEQ is at
// most since (RFC 7162 3.1.3 STORE UNCHANGEDSINCE), checked in the same
// transaction; it also returns the UIDs that failed the test, ascending as
// given.
func (tx *Tx) SetFlagsUnchangedSince(acct string, mboxID uint32, uids []uint32, op FlagOp, flags []string, since uint64) (changed []*Message, modified []uint32, err error) {
	pass := make([]uint32, 0, len(uids))
	for i, uid := range uids {
		if err := tx.prefetchMessages(acct, mboxID, uids, i); err != nil {
			return nil, nil, err
		}
		m, err := tx.Message(acct, mboxID, uid)
		if errors.Is(err, ErrNoMessage) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if m.ModSeq > since {
			modified = append(modified, uid)
			continue
		}
		pass = append(pass, uid)
	}
	changed, err = tx.SetFlags(acct, mboxID, pass, op, flags)
	return changed, modified, err
}

// Expunge removes the given messages (all \Deleted ones if uids is nil)
// and returns the UIDs removed, ascending.
func (tx *Tx) Expunge(acct string, mboxID uint32, uids []uint32) ([]uint32, error) {
	var gone []*Message
	if uids == nil {
		err := tx.scan(messagePrefix(acct, mboxID), false, func(_, v []byte) error {
			var m Message
			if err := decodeMessage(v, &m); err != nil {
				return err
			}
			if m.HasFlag(FlagDeleted) {
				gone = append(gone, &m)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	} else {
		for i, uid := range uids {
			if err := tx.prefetchMessages(acct, mboxID, uids, i); err != nil {
				return nil, err
			}
			m, err := tx.Message(acct, mboxID, uid)
			if errors.Is(err, ErrNoMessage) {
				continue
			}
			if err != nil {
				return nil, err
			}
			gone = append(gone, m)
		}
	}
	slices.SortFunc(gone, func(a, b *Message) int { return int(int64(a.UID) - int64(b.UID)) })
	out := make([]uint32, 0, len(gone))
	var modseq uint64
	for i, m := range gone {
		if err := tx.prefetchRemoval(acct, mboxID, gone, i); err != nil {
			return nil, err
		}
		st, err := tx.modseq(acct, mboxID)
		if err != nil {
			return nil, err
		}
		modseq = st.txModSeq
		if err := tx.removeMessage(acct, mboxID, m); err != nil {
			return nil, err
		}
		if err := tx.logExpunged(acct, mboxID, st, m.UID); err != nil {
			return nil, err
		}
		tx.noteExpunged(acct, mboxID, m.UID)
		out = append(out, m.UID)
	}
	if len(gone) > 0 {
		s := tx.s
		ref := mboxRef{acct, mboxID}
		tx.afterCommit(func() []Change {
			bi := s.idx.boxes[ref]
			out := make([]Change, 0, len(gone))
			for _, m := range gone {
				c := Change{Kind: MessageExpunged, Account: acct, MailboxID: mboxID, Message: m, ModSeq: modseq}
				if bi != nil {
					c.Seq, _ = bi.remove(m.UID)
					c.Count = uint32(len(bi.msgs))
				}
				out = append(out, c)
			}
			return out
		})
	}
	return out, nil
}

// Copy copies messages to another mailbox of the same account, sharing the
// stored bytes. Flags and internal dates are kept (RFC 9051 6.4.7).
func (tx *Tx) Copy(acct string, srcID uint32, uids []uint32, dest string) (*CopyResult, error) {
	return tx.copyMessages(acct, srcID, uids, dest, true)
}

// copyMessages is Copy; checkQuota is false for a Move, which adds
// nothing to the account.
func (tx *Tx) copyMessages(acct string, srcID uint32, uids []uint32, dest string, checkQuota bool) (*CopyResult, error) {
	mb, err := tx.Mailbox(acct, dest)
	if err != nil {
		return nil, err
	}
	res := &CopyResult{UIDValidity: mb.UIDValidity}
	for _, uid := range uids {
		m, err := tx.Message(acct, srcID, uid)
		if errors.Is(err, ErrNoMessage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		nm := *m
		nm.UID = mb.UIDNext
		if checkQuota {
			// Message by message: the copies before count.
			if err := tx.CheckQuota(acct, nm.Size, 1); err != nil {
				return nil, err
			}
		}
		if _, err := tx.insert(acct, mb, &nm); err != nil {
			return nil, err
		}
		res.SourceUIDs = append(res.SourceUIDs, uid)
		res.DestUIDs = append(res.DestUIDs, nm.UID)
	}
	return res, nil
}

// Move is Copy followed by expunging the originals, atomically.
func (tx *Tx) Move(acct string, srcID uint32, uids []uint32, dest string) (*CopyResult, error) {
	start := len(tx.post)
	res, err := tx.copyMessages(acct, srcID, uids, dest, false)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Expunge(acct, srcID, res.SourceUIDs); err != nil {
		return nil, err
	}
	// The change feed tells of the expunges before the new messages: a
	// MOVE into the mailbox itself then reads, to a session, as EXPUNGE
	// before EXISTS, as on Dovecot (imaptest's move group expects it);
	// the in-memory state still follows in the order it was made.
	fns := slices.Clone(tx.post[start:])
	tx.post = append(tx.post[:start], func() []Change {
		var added, rest []Change
		for _, fn := range fns {
			for _, c := range fn() {
				if c.Kind == MessageAdded {
					added = append(added, c)
				} else {
					rest = append(rest, c)
				}
			}
		}
		return append(rest, added...)
	})
	return res, nil
}

// loadBox returns the index of a mailbox, loading it if needed. Loading
// holds the write lock so that no commit slips between the disk scan and
// the index insert. It marks the index used: eviction takes only indexes
// unread for Options.IndexIdle, so the caller's index stays the one that
// commits maintain.
func (s *Store) loadBox(acct string, id uint32) (*boxIndex, error) {
	ref := mboxRef{acct, id}
	s.idx.mu.RLock()
	bi := s.idx.boxes[ref]
	s.idx.mu.RUnlock()
	if bi != nil {
		bi.lastUsed.Store(time.Now().UnixNano())
		return bi, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.idx.mu.RLock()
	bi = s.idx.boxes[ref]
	s.idx.mu.RUnlock()
	if bi != nil {
		bi.lastUsed.Store(time.Now().UnixNano())
		return bi, nil
	}
	var followed *pollRead
	err := s.View(func(tx *Tx) error {
		bi = &boxIndex{} // anew if the transaction runs again
		// The mailbox exists in this snapshot if its ID does (as
		// checkGone tells): one read, not MailboxByID's two one after
		// the other. On a store others share the MODSEQ state that
		// loadMark reads below comes in the same round trip.
		idKey := mailboxIDKey(acct, id)
		if s.follow != nil {
			if err := tx.w.prefetch(idKey, modseqStateKey(acct, id)); err != nil {
				return err
			}
		}
		switch live, err := tx.has(idKey); {
		case err != nil:
			return fmt.Errorf("mailbox %d: %w", id, err)
		case !live:
			return fmt.Errorf("mailbox %d: %w", id, ErrNoMailbox)
		}
		if s.follow != nil {
			// Other nodes' changes in this snapshot are announced
			// before the index that holds them is in place.
			var err error
			if followed, err = s.follow.readIn(tx, nil, followLookback); err != nil {
				return err
			}
		}
		var ld indexLoader
		err := tx.scan(messagePrefix(acct, id), false, func(_, v []byte) error {
			return decodeMessage(v, ld.next())
		})
		if err != nil {
			return err
		}
		ld.fill(bi)
		if s.follow == nil {
			return nil
		}
		bi.modseq, err = tx.loadMark(acct, id, bi.modseq)
		return err
	})
	if err != nil {
		return nil, err
	}
	var changes []Change
	if followed != nil {
		changes = s.follow.applyRead(followed, nil)
	}
	bi.lastUsed.Store(time.Now().UnixNano())
	s.idx.mu.Lock()
	s.idx.boxes[ref] = bi
	s.idx.mu.Unlock()
	for _, c := range changes {
		s.emit(c)
	}
	return bi, nil
}

// Messages returns a snapshot of a mailbox's records in UID order; index
// i holds sequence number i+1. The records must not be modified.
func (s *Store) Messages(acct string, mboxID uint32) ([]*Message, error) {
	bi, err := s.loadBox(acct, mboxID)
	if err != nil {
		return nil, err
	}
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	return slices.Clone(bi.msgs), nil
}

// Status returns a mailbox's counters.
func (s *Store) Status(acct, name string) (*MailboxInfo, MailboxStatus, error) {
	return s.StatusFor(acct, name, StatusOptions{HighestModSeq: true})
}

// StatusOptions says what a caller of StatusFor needs beyond the
// mailbox's record and the index's counts.
type StatusOptions struct {
	// HighestModSeq: MailboxStatus.HighestModSeq is filled in. Reading
	// it is a read of its own after the mailbox's record, which names
	// the mailbox's ID: on PostgreSQL a round trip that a STATUS not
	// asking for it (Thunderbird's, without CONDSTORE) need not wait for.
	HighestModSeq bool
	// CaughtUp: the caller has called CatchUp (an IMAP STATUS), so on a
	// store that follows other nodes the answer may come from the node's
	// memory (reccache.go): one round trip fewer, two with
	// HighestModSeq.
	CaughtUp bool
}

// StatusFor is Status reading only what o asks for: without
// HighestModSeq it is one read of the mailbox's record when the
// mailbox's index is loaded (and a load of the index when not).
func (s *Store) StatusFor(acct, name string, o StatusOptions) (*MailboxInfo, MailboxStatus, error) {
	if o.CaughtUp && s.cachesRecords() {
		return s.currentStatus(acct, name)
	}
	var mb *MailboxInfo
	var ms ModSeqInfo
	if err := s.View(func(tx *Tx) error {
		var err error
		if mb, err = tx.Mailbox(acct, name); err != nil {
			return err
		}
		if o.HighestModSeq {
			ms, err = tx.ModSeq(acct, mb.ID)
		}
		return err
	}); err != nil {
		return nil, MailboxStatus{}, err
	}
	bi, err := s.loadBox(acct, mb.ID)
	if err != nil {
		return nil, MailboxStatus{}, err
	}
	s.idx.mu.RLock()
	st := bi.status()
	st.Recent = bi.countFrom(mb.RecentUID)
	s.idx.mu.RUnlock()
	st.UIDNext = mb.UIDNext
	st.UIDValidity = mb.UIDValidity
	st.HighestModSeq = ms.HighestModSeq
	return mb, st, nil
}

// currentStatus is StatusFor from the node's memory (reccache.go): the
// record as CurrentMailbox has it, the counts and HIGHESTMODSEQ from the
// index, which follows every commit as the record cache does.
func (s *Store) currentStatus(acct, name string) (*MailboxInfo, MailboxStatus, error) {
	mb, err := s.CurrentMailbox(acct, name)
	if err != nil {
		return nil, MailboxStatus{}, err
	}
	bi, err := s.loadBox(acct, mb.ID)
	if err != nil {
		return nil, MailboxStatus{}, err
	}
	s.idx.mu.RLock()
	st := bi.status()
	st.Recent = bi.countFrom(mb.RecentUID)
	st.HighestModSeq = bi.modseq
	s.idx.mu.RUnlock()
	st.UIDNext = mb.UIDNext
	st.UIDValidity = mb.UIDValidity
	return mb, st, nil
}

// Raw returns a message's bytes.
func (s *Store) Raw(blob uint64) ([]byte, error) {
	var raw []byte
	err := s.View(func(tx *Tx) error {
		var err error
		raw, err = tx.BlobBytes(blob)
		return err
	})
	return raw, err
}

// ReadRaw calls fn with a message's bytes as the store holds them,
// without copying them: fn must not keep raw, nor take long (the value
// log file stays locked for reading while it runs). It serves callers that
// need part of a message (its header) or only look at it (SEARCH).
func (s *Store) ReadRaw(blob uint64, fn func(raw []byte) error) error {
	return s.View(func(tx *Tx) error {
		err := tx.txn.GetFunc(blobKey(prefixRaw, blob), fn)
		if errors.Is(err, kv.ErrNotFound) {
			return fmt.Errorf("blob %d: %w", blob, ErrNoMessage)
		}
		return err
	})
}

// ReadRaws is ReadRaw for several messages, read together: it calls
// fn(i, raw) for each blobs[i] the store holds (not for one it does not:
// expunged meanwhile), in no set order, from one snapshot. On PostgreSQL
// that is one round trip (kv.Txn.GetMany), not one per message: SEARCH
// over message bodies reads batches of them so. fn must not keep raw.
func (s *Store) ReadRaws(blobs []uint64, fn func(i int, raw []byte) error) error {
	keys := make([][]byte, len(blobs))
	for i, b := range blobs {
		keys[i] = blobKey(prefixRaw, b)
	}
	return s.View(func(tx *Tx) error { return tx.txn.GetMany(keys, fn) })
}

// ReadSummaries is ReadRaws for the messages' derived summaries (a
// message stored before the summarizer has none, and is not passed).
func (s *Store) ReadSummaries(blobs []uint64, fn func(i int, sum []byte) error) error {
	keys := make([][]byte, len(blobs))
	for i, b := range blobs {
		keys[i] = blobKey(prefixSummary, b)
	}
	return s.View(func(tx *Tx) error { return tx.txn.GetMany(keys, fn) })
}

// Summary returns a message's derived summary, computing and not storing
// it when the message predates the summarizer.
func (s *Store) Summary(blob uint64) ([]byte, error) {
	var sum []byte
	err := s.View(func(tx *Tx) error {
		var err error
		sum, err = tx.BlobSummary(blob)
		return err
	})
	return sum, err
}

// Mailbox returns a mailbox's record by name.
func (s *Store) Mailbox(acct, name string) (*MailboxInfo, error) {
	var mb *MailboxInfo
	err := s.View(func(tx *Tx) error {
		var err error
		mb, err = tx.Mailbox(acct, name)
		return err
	})
	return mb, err
}

// ListMailboxes returns an account's mailboxes sorted by name.
func (s *Store) ListMailboxes(acct string) ([]*MailboxInfo, error) {
	var out []*MailboxInfo
	err := s.View(func(tx *Tx) error {
		var err error
		out, err = tx.ListMailboxes(acct)
		return err
	})
	return out, err
}

// Watch runs fn with a snapshot of a mailbox's records while no write
// transaction can commit, so that a caller can start following the change
// feed from exactly that state. fn must not call the store's write methods,
// and must copy msgs to keep it: it is the store's own index, which the
// next commit changes (not copying it for every SELECT of a large mailbox
// saved a fifth of the command).
//
// name, if the caller knows it (SELECT looked the mailbox up by name), is
// read ahead with the other records on a shared engine: one round trip
// fewer. A wrong or empty name costs nothing but that round trip.
func (s *Store) Watch(acct string, mboxID uint32, name string, fn func(mb *MailboxInfo, msgs []*Message, facts BoxFacts)) error {
	bi, err := s.loadBox(acct, mboxID)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	mb, highest, err := s.watchedRecords(acct, mboxID, name, bi)
	if err != nil {
		return err
	}
	s.idx.mu.RLock()
	msgs := bi.msgs
	facts := BoxFacts{
		HighestModSeq: highest,
		Status:        bi.status(),
		FirstUnseen:   bi.firstUnseenSeq(), // wmu is held, as it needs
		Keywords:      bi.keywordList(),
	}
	s.idx.mu.RUnlock()
	fn(mb, msgs, facts) // wmu is held: no commit changes msgs meanwhile
	return nil
}

// watchedRecords returns, for Watch (wmu held), the mailbox's record and
// HIGHESTMODSEQ.
func (s *Store) watchedRecords(acct string, mboxID uint32, name string, bi *boxIndex) (*MailboxInfo, uint64, error) {
	caches := s.cachesRecords()
	if caches {
		// Caught up (the caller's CatchUp), the index and its MODSEQ
		// are current, and so is a cached record: no read at all
		// (reccache.go). The index's MODSEQ is the mailbox's
		// HIGHESTMODSEQ: every MODSEQ a mailbox takes is for a change
		// the index applies (Tx.modseq's callers note each).
		if mb, ok := s.recs.byID(acct, mboxID); ok {
			return mb, bi.modseq, nil
		}
	}
	var gen uint64
	if caches {
		gen = s.recs.generation(acct)
	}
	var mb *MailboxInfo
	var ms ModSeqInfo
	err := s.View(func(tx *Tx) error {
		// The name's record and the MODSEQ state, read one after the
		// other below, in one round trip on a shared engine (this
		// runs under wmu: this node's writers wait meanwhile).
		if s.shared {
			keys := [][]byte{mailboxIDKey(acct, mboxID), modseqStateKey(acct, mboxID)}
			if n, err := NormalizeMailbox(name); name != "" && err == nil {
				keys = append(keys, mailboxKey(acct, n))
			}
			if err := tx.w.prefetch(keys...); err != nil {
				return err
			}
		}
		var err error
		if mb, err = tx.MailboxByID(acct, mboxID); err != nil {
			return err
		}
		ms, err = tx.watchedModSeq(acct, mboxID)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if caches {
		s.recs.put(acct, gen, mb)
	}
	return mb, ms.HighestModSeq, nil
}

// BoxFacts are what opening a mailbox reports besides its messages, kept
// current by every commit instead of counted on each SELECT.
type BoxFacts struct {
	// HighestModSeq is the mailbox's HIGHESTMODSEQ as of the snapshot:
	// the change feed goes on from there.
	HighestModSeq uint64
	Status        MailboxStatus // without UIDNext, UIDValidity and HighestModSeq
	FirstUnseen   uint32        // sequence number; 0: every message is \Seen
	Keywords      []string      // flags in use that are not system flags, sorted
}

// removeMessage deletes a message record with its back reference and
// drops its blob reference, and stops counting it against the quota.
func (tx *Tx) removeMessage(acct string, mboxID uint32, m *Message) error {
	if err := tx.addUsage(acct, -m.Size, -1); err != nil {
		return err
	}
	return tx.removeMessageRecord(acct, mboxID, m)
}

// removeMessageRecord is removeMessage without the quota: for the
// messages of a mailbox already deleted, subtracted when it was.
func (tx *Tx) removeMessageRecord(acct string, mboxID uint32, m *Message) error {
	if err := tx.del(messageKey(acct, mboxID, m.UID)); err != nil {
		return err
	}
	if err := tx.del(blobRefKey(m.Blob, acct, mboxID, m.UID)); err != nil {
		return err
	}
	return tx.UnrefBlob(m.Blob)
}

// MessageRef locates a message.
type MessageRef struct {
	Account   string
	MailboxID uint32
	UID       uint32
}

func blobRefKey(blob uint64, acct string, mboxID, uid uint32) []byte {
	k := blobKey(prefixBlobRef, blob)
	k = append(append(k, acct...), 0)
	k = binary.BigEndian.AppendUint32(k, mboxID)
	return binary.BigEndian.AppendUint32(k, uid)
}

// MessagesByBlob returns every message, in any account and mailbox, that
// refers to the blob: the copies of a stub that must all be withdrawn.
func (tx *Tx) MessagesByBlob(blob uint64) ([]MessageRef, error) {
	prefix := blobKey(prefixBlobRef, blob)
	var out []MessageRef
	err := tx.scan(prefix, true, func(k, _ []byte) error {
		rest := k[len(prefix):]
		if len(rest) < 9 {
			return fmt.Errorf("bad blob reference key %q", k)
		}
		tail := rest[len(rest)-8:]
		out = append(out, MessageRef{
			Account:   string(rest[:len(rest)-9]),
			MailboxID: binary.BigEndian.Uint32(tail[:4]),
			UID:       binary.BigEndian.Uint32(tail[4:]),
		})
		return nil
	})
	return out, err
}

// ExpungeRef removes one message wherever it is.
func (tx *Tx) ExpungeRef(ref MessageRef) error {
	_, err := tx.Expunge(ref.Account, ref.MailboxID, []uint32{ref.UID})
	return err
}
