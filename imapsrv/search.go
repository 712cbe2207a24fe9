package imapsrv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 text for BODY/TEXT
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"certmail/mailbox"
)

func (sess *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	// Bound the work before doing any (issue 11): each text key can
	// cost a pass over every message, so their number is capped, and the
	// whole SEARCH is stopped when it runs too long or the client hangs up.
	lim := sess.srv.opts.Limits
	if n := searchKeys(criteria); lim.MaxSearchKeys > 0 && n > lim.MaxSearchKeys {
		// RFC 5530 section 3: LIMIT, an implementation limit was hit.
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: fmt.Sprintf("too many search keys: %d (limit %d)", n, lim.MaxSearchKeys)}
	}
	if err := sess.checkContextTag(options); err != nil {
		return nil, err
	}
	run := &searchRun{sess: sess, watch: sess.watchCommand(lim.SearchTimeout)}
	data, err := sess.search(run, kind, criteria, options)
	if err != nil && run.watch.err != nil {
		err = sess.stopped(run.watch.err, lim.SearchTimeout, run)
	}
	if h := sess.srv.onSearchDone; h != nil {
		h(run.messages, run.folds, err)
	}
	if err == nil && options.ReturnSave && options.ReturnPartial != nil && !options.ReturnCount {
		// RFC 9394 section 3.2: with PARTIAL (and no COUNT), $ is what
		// PARTIAL returns, and MIN's and MAX's messages.
		sess.searchRes = savedPartial(imapserver.PartialOfSet(run.uids, *options.ReturnPartial), data, options, run.uids)
	}
	if err == nil && options.ReturnUpdate {
		err = sess.addContext(kind, criteria, nil, sess.itemsOf(run.uids), run.highest)
	}
	return data, err
}

// stopped is the answer to a SEARCH its context ended.
func (sess *session) stopped(cause error, timeout time.Duration, run *searchRun) error {
	sess.log.Warn("search stopped", "user", sess.acct, "remote", sess.remote(), "reason", cause.Error(), "messages", run.messages)
	if errors.Is(cause, errCommandTimeout) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: fmt.Sprintf("SEARCH stopped after %s (limit): search fewer messages or fewer words", timeout)}
	}
	// The client is gone (or the server is closing): nobody reads this.
	return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SEARCH stopped: " + cause.Error()}
}

// searchKeys counts the keys of a search program, nested ones included
// (each flag, date, size, set, header or text key, NOT and OR).
func searchKeys(c *imap.SearchCriteria) int {
	n := len(c.SeqNum) + len(c.UID) + len(c.Header) + len(c.Body) + len(c.Text) + len(c.Flag) + len(c.NotFlag) +
		len(c.EmailID) + len(c.ThreadID)
	if c.SaveDateSupported {
		n++
	}
	for _, t := range []time.Time{c.Since, c.Before, c.SentSince, c.SentBefore, c.SavedSince, c.SavedBefore} {
		if !t.IsZero() {
			n++
		}
	}
	if c.Larger > 0 {
		n++
	}
	if c.Smaller > 0 {
		n++
	}
	if c.ModSeq != nil {
		n++
	}
	for i := range c.Not {
		n += 1 + searchKeys(&c.Not[i])
	}
	for i := range c.Or {
		n += 1 + searchKeys(&c.Or[i][0]) + searchKeys(&c.Or[i][1])
	}
	return n
}

// searchRun is one SEARCH command's state.
type searchRun struct {
	sess *session
	// watch says when the search must stop (cancel.go).
	watch *commandWatch
	// folded holds each text key that is not ASCII, case-folded once.
	folded map[string][]byte
	// What the search cost, for the log and the tests: messages looked
	// at, and texts case-folded (at most a few per message, however
	// many keys).
	messages, folds int
	// uids is what the search found; highest the mailbox's
	// HIGHESTMODSEQ when it started (for a context, context.go).
	uids    imap.UIDSet
	highest uint64
}

var errSearchStopped = errors.New("search stopped")

// foldedKey is a text key case-folded, computed once per SEARCH.
func (run *searchRun) foldedKey(word string) []byte {
	if f, ok := run.folded[word]; ok {
		return f
	}
	if run.folded == nil {
		run.folded = make(map[string][]byte)
	}
	f := []byte(strings.ToLower(word))
	run.folded[word] = f
	return f
}

// fold case-folds a message's text, counted: what must happen once per
// message and SEARCH, not once per key.
func (run *searchRun) fold(text []byte) []byte {
	run.folds++
	return bytes.ToLower(text)
}

func (sess *session) search(run *searchRun, kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	var all []target
	box := sess.box
	box.mu.Lock()
	run.highest = box.highest
	maxSeq := sess.clientCountLocked()
	var maxUID uint32
	if len(box.msgs) > 0 {
		maxUID = box.msgs[len(box.msgs)-1].UID
	}
	all = make([]target, 0, len(box.msgs))
	for i, m := range box.msgs {
		if cs := sess.tracker.EncodeSeqNum(uint32(i + 1)); cs != 0 {
			all = append(all, target{seq: cs, msg: m})
		}
	}
	box.mu.Unlock()

	c := sess.staticCriteria(*criteria, maxSeq, maxUID)
	data := &imap.SearchData{}
	// A search with a MODSEQ key answers the MODSEQ of what it found
	// (RFC 7162 3.1.5): the highest of the messages found, or, when only
	// MIN and/or MAX are returned, the highest of those (3.1.10).
	withModSeq := imapserver.SearchCriteriaUseModSeq(criteria)
	minMaxOnly := (options.ReturnMin || options.ReturnMax) && !options.ReturnAll && !options.ReturnCount
	var firstModSeq, lastModSeq, highestModSeq uint64
	var seqSet imap.SeqSet
	var uidSet imap.UIDSet
	add := func(t target) {
		// Matches come in ascending order of both numbers: extend the
		// last range or start one (UIDSet.AddNum looks for the place).
		uid := imap.UID(t.msg.UID)
		if n := len(uidSet); n > 0 && uidSet[n-1].Stop+1 == uid {
			uidSet[n-1].Stop = uid
		} else {
			uidSet = append(uidSet, imap.UIDRange{Start: uid, Stop: uid})
		}
		num := t.seq
		if kind == imapserver.NumKindUID {
			num = t.msg.UID
		} else if n := len(seqSet); n > 0 && seqSet[n-1].Stop+1 == t.seq {
			seqSet[n-1].Stop = t.seq
		} else {
			seqSet = append(seqSet, imap.SeqRange{Start: t.seq, Stop: t.seq})
		}
		if data.Count == 0 {
			firstModSeq = t.msg.ModSeq
		}
		lastModSeq = t.msg.ModSeq
		highestModSeq = max(highestModSeq, t.msg.ModSeq)
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		if num > data.Max {
			data.Max = num
		}
		data.Count++
	}
	if err := sess.matchAll(run, all, &c, add); err != nil {
		return nil, err
	}
	run.messages = len(all)
	if withModSeq && data.Count > 0 {
		data.ModSeq = highestModSeq
		if minMaxOnly {
			data.ModSeq = 0
			if options.ReturnMin {
				data.ModSeq = firstModSeq
			}
			if options.ReturnMax {
				data.ModSeq = max(data.ModSeq, lastModSeq)
			}
		}
	}
	// Always a typed set, even when empty, so the client can tell UIDs
	// from sequence numbers.
	if kind == imapserver.NumKindUID {
		if uidSet == nil {
			uidSet = imap.UIDSet{}
		}
		data.All = uidSet
	} else {
		if seqSet == nil {
			seqSet = imap.SeqSet{}
		}
		data.All = seqSet
	}
	if options.ReturnSave {
		sess.searchRes = uidSet
	}
	run.uids = uidSet
	return data, nil
}

// staticCriteria resolves "*" and "$" in the criteria's number sets, so
// matching needs no further context.
func (sess *session) staticCriteria(c imap.SearchCriteria, maxSeq, maxUID uint32) imap.SearchCriteria {
	var seqs []imap.SeqSet
	var uidsets []imap.UIDSet
	for _, s := range c.SeqNum {
		if imap.IsSearchRes(s) {
			uidsets = append(uidsets, sess.searchRes)
			continue
		}
		out := make(imap.SeqSet, len(s))
		for i, r := range s {
			out[i].Start, out[i].Stop = staticRange(r.Start, r.Stop, maxSeq)
		}
		seqs = append(seqs, out)
	}
	for _, s := range c.UID {
		if imap.IsSearchRes(s) {
			uidsets = append(uidsets, sess.searchRes)
			continue
		}
		out := make(imap.UIDSet, len(s))
		for i, r := range s {
			a, b := staticRange(uint32(r.Start), uint32(r.Stop), maxUID)
			out[i].Start, out[i].Stop = imap.UID(a), imap.UID(b)
		}
		uidsets = append(uidsets, out)
	}
	c.SeqNum, c.UID = seqs, uidsets
	c.Not = append([]imap.SearchCriteria(nil), c.Not...)
	for i := range c.Not {
		c.Not[i] = sess.staticCriteria(c.Not[i], maxSeq, maxUID)
	}
	c.Or = append([][2]imap.SearchCriteria(nil), c.Or...)
	for i := range c.Or {
		c.Or[i][0] = sess.staticCriteria(c.Or[i][0], maxSeq, maxUID)
		c.Or[i][1] = sess.staticCriteria(c.Or[i][1], maxSeq, maxUID)
	}
	return c
}

// Messages whose bytes a search needs are read in batches of up to
// rawBatch messages and rawBatchBytes bytes (mailbox.Store.ReadRaws): on
// PostgreSQL one round trip per batch, where a read per message made
// a SEARCH TEXT over 5,000 messages take 557 ms against Dovecot's 215.
const (
	rawBatch      = 256
	rawBatchBytes = 4 << 20
)

// matchAll evaluates c against each of all, in order, and calls add for
// each that matches, in order. The criteria that need no bytes are
// decided at once; the messages that need their bytes wait in a batch.
func (sess *session) matchAll(run *searchRun, all []target, c *imap.SearchCriteria, add func(target)) error {
	hook := sess.srv.onSearchMessage
	// pending are the messages looked at since the last batch, in
	// order: decided (ok) or waiting for their bytes (need holds their
	// places in pending).
	type pendingMsg struct {
		t  target
		ok bool
	}
	var pending []pendingMsg
	var need []int
	var blobs []uint64
	needBytes := int64(0)
	flush := func() error {
		if len(need) > 0 {
			clear(blobs)
			blobs = blobs[:0]
			for _, k := range need {
				blobs = append(blobs, pending[k].t.msg.Blob)
			}
			n := 0
			err := sess.srv.store.ReadRaws(blobs, func(j int, raw []byte) error {
				if n++; n%checkEvery == 0 && run.watch.check() {
					return errSearchStopped
				}
				p := &pending[need[j]]
				mm := matchMessage{run: run, t: p.t, raw: raw, loaded: true}
				var err error
				p.ok, err = mm.match(c)
				return err
			})
			// A message not found was expunged meanwhile: not a match.
			if err != nil {
				if !errors.Is(err, errSearchStopped) {
					err = fmt.Errorf("reading messages for SEARCH: %w", err)
				}
				return err
			}
		}
		for _, p := range pending {
			if p.ok {
				add(p.t)
			}
		}
		pending, need, needBytes = pending[:0], need[:0], 0
		return nil
	}
	for i, t := range all {
		if i%checkEvery == 0 && run.watch.check() {
			run.messages = i
			return errSearchStopped
		}
		if hook != nil {
			hook()
		}
		mm := matchMessage{run: run, t: t, inPlace: t.msg.Size < zeroCopyMax}
		ok, err := mm.match(c)
		switch {
		case errors.Is(err, errNeedRaw):
			need = append(need, len(pending))
			needBytes += t.msg.Size
		case err != nil:
			run.messages = i + 1
			return err
		case len(pending) == 0:
			// Nothing waits before it (a search of flags and dates
			// only: no batch at all).
			if ok {
				add(t)
			}
			continue
		}
		pending = append(pending, pendingMsg{t: t, ok: ok})
		if len(need) >= rawBatch || needBytes >= rawBatchBytes {
			if err := flush(); err != nil {
				run.messages = i + 1
				return err
			}
		}
	}
	if err := flush(); err != nil {
		run.messages = len(all)
		return err
	}
	return nil
}

// matchMessage evaluates criteria against one message, reading its bytes
// only if a criterion needs them, and at most once.
type matchMessage struct {
	run    *searchRun
	t      target
	raw    []byte
	header *textproto.Header
	loaded bool
	gone   bool
	// inPlace: load asks matchOne to read the bytes in place.
	inPlace bool
	// text is what was decoded and case-folded of the message, made on
	// first need: most messages of most searches need none, and a SEARCH
	// UNSEEN spends some 50 ns a message, so matchMessage stays small.
	text *matchText
}

// matchText is a message's decoded text, case-folded on first need of a
// key that is not ASCII: once per message, however many keys (issue 11).
type matchText struct {
	bodyText, bodyFolded     []byte
	headerText, headerFolded []byte
	// fields holds the decoded values of header fields by lower-case name,
	// as HEADER, FROM, TO, CC, BCC and SUBJECT keys need them.
	fields map[string]*fieldValues
}

func (mm *matchMessage) txt() *matchText {
	if mm.text == nil {
		mm.text = &matchText{}
	}
	return mm.text
}

type fieldValues struct {
	decoded, folded [][]byte
}

// errNeedRaw ends a match that needs the message's bytes when they are
// to be read in place (see matchOne).
var errNeedRaw = errors.New("message bytes needed")

// zeroCopyMax bounds the messages matched in place, in the store's memory
// (Store.ReadRaw), rather than from a copy: copying every message was a
// quarter of a SEARCH TEXT, but matching in place holds the value log file
// for reading, which must stay short.
const zeroCopyMax = 1 << 20

// matchOne evaluates c against one message, reading its bytes only if a
// criterion needs them, in place when the message is not large.
func (sess *session) matchOne(run *searchRun, t target, c *imap.SearchCriteria) (bool, error) {
	mm := matchMessage{run: run, t: t, inPlace: t.msg.Size < zeroCopyMax}
	ok, err := mm.match(c)
	if !errors.Is(err, errNeedRaw) {
		return ok, err
	}
	err = sess.srv.store.ReadRaw(t.msg.Blob, func(raw []byte) error {
		mm = matchMessage{run: run, t: t, raw: raw, loaded: true}
		ok, err = mm.match(c)
		return err
	})
	if errors.Is(err, mailbox.ErrNoMessage) {
		return false, nil // expunged meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("reading message %d for SEARCH: %w", t.msg.UID, err)
	}
	return ok, nil
}

func (mm *matchMessage) load() error {
	if mm.loaded {
		return nil
	}
	if mm.inPlace {
		return errNeedRaw
	}
	mm.loaded = true
	raw, err := mm.run.sess.srv.store.Raw(mm.t.msg.Blob)
	if errors.Is(err, mailbox.ErrNoMessage) {
		mm.gone = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading message %d for SEARCH: %w", mm.t.msg.UID, err)
	}
	mm.raw = raw
	return nil
}

// hdr is the parsed header, parsed on first need: TEXT and BODY mostly
// get their answer from the raw bytes (see headerContains), and parsing
// every header was a fifth of a SEARCH TEXT over a large mailbox.
func (mm *matchMessage) hdr() *textproto.Header {
	if mm.header != nil {
		return mm.header
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(mm.raw)))
	if err != nil {
		// Search the well-formed header fields of a broken header.
		h, err = textproto.ReadHeader(bufio.NewReader(bytes.NewReader(parseable(mm.raw))))
		if err != nil {
			h = textproto.Header{}
		}
	}
	mm.header = &h
	return mm.header
}

func (mm *matchMessage) match(c *imap.SearchCriteria) (bool, error) {
	m := mm.t.msg
	// Cheap criteria first: they need no disk access.
	for _, s := range c.SeqNum {
		if !s.Contains(mm.t.seq) {
			return false, nil
		}
	}
	for _, s := range c.UID {
		if !s.Contains(imap.UID(m.UID)) {
			return false, nil
		}
	}
	if !c.Since.IsZero() || !c.Before.IsZero() {
		date := timeDate(m.InternalDate)
		if !c.Since.IsZero() && date.Before(timeDate(c.Since)) {
			return false, nil
		}
		if !c.Before.IsZero() && !date.Before(timeDate(c.Before)) {
			return false, nil
		}
	}
	for _, f := range c.Flag {
		if !mm.hasFlag(m, f) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if mm.hasFlag(m, f) {
			return false, nil
		}
	}
	// RFC 7162 3.1.5: a MODSEQ key holds for messages changed at or after
	// it. The entry name (a flag) narrows nothing here: the store keeps
	// one MODSEQ per message, and the RFC says to ignore it then.
	if c.ModSeq != nil && m.ModSeq < c.ModSeq.ModSeq {
		return false, nil
	}
	if !matchObjectIDs(m, c) || !matchSaveDate(m, c) {
		return false, nil
	}
	if c.Larger > 0 && m.Size <= c.Larger {
		return false, nil
	}
	if c.Smaller > 0 && m.Size >= c.Smaller {
		return false, nil
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		if err := mm.load(); err != nil || mm.gone {
			return false, err
		}
		mh := mail.Header{Header: gomessage.Header{Header: *mm.hdr()}}
		sent, err := mh.Date()
		if err != nil || sent.IsZero() {
			return false, nil
		}
		sd := timeDate(sent)
		if !c.SentSince.IsZero() && sd.Before(timeDate(c.SentSince)) {
			return false, nil
		}
		if !c.SentBefore.IsZero() && !sd.Before(timeDate(c.SentBefore)) {
			return false, nil
		}
	}
	for _, hf := range c.Header {
		if err := mm.load(); err != nil || mm.gone {
			return false, err
		}
		if mm.run.watch.check() { // each key can be a pass over the message
			return false, errSearchStopped
		}
		if !mm.headerMatches(hf.Key, hf.Value) {
			return false, nil
		}
	}
	for _, word := range c.Body {
		if err := mm.load(); err != nil || mm.gone {
			return false, err
		}
		if mm.run.watch.check() { // each key can be a pass over the message
			return false, errSearchStopped
		}
		if !mm.bodyContains(word) {
			return false, nil
		}
	}
	for _, word := range c.Text {
		if err := mm.load(); err != nil || mm.gone {
			return false, err
		}
		if mm.run.watch.check() { // each key can be a pass over the message
			return false, errSearchStopped
		}
		if !mm.headerContains(word) && !mm.bodyContains(word) {
			return false, nil
		}
	}
	for i := range c.Not {
		ok, err := mm.match(&c.Not[i])
		if err != nil || ok {
			return false, err
		}
	}
	for i := range c.Or {
		a, err := mm.match(&c.Or[i][0])
		if err != nil {
			return false, err
		}
		if a {
			continue
		}
		b, err := mm.match(&c.Or[i][1])
		if err != nil || !b {
			return false, err
		}
	}
	return true, nil
}

// hasFlag is a flag test of SEARCH: \Recent (RECENT, NEW, OLD) is the
// session's, not stored (recent.go).
func (mm *matchMessage) hasFlag(m *mailbox.Message, f imap.Flag) bool {
	if strings.EqualFold(string(f), string(flagRecent)) {
		return mm.run.sess.isRecent(m.UID)
	}
	return m.HasFlag(string(f))
}

func (mm *matchMessage) headerMatches(key, value string) bool {
	fv := mm.fieldValues(key)
	if value == "" {
		return len(fv.decoded) > 0
	}
	if isASCII(value) {
		for _, v := range fv.decoded {
			if indexFoldASCII(v, value) >= 0 {
				return true
			}
		}
		return false
	}
	if fv.folded == nil {
		fv.folded = make([][]byte, len(fv.decoded))
		for i, v := range fv.decoded {
			fv.folded[i] = mm.run.fold(v)
		}
	}
	word := mm.run.foldedKey(value)
	for _, v := range fv.folded {
		if bytes.Contains(v, word) {
			return true
		}
	}
	return false
}

// fieldValues are the decoded values of the header fields named key,
// decoded once per message.
func (mm *matchMessage) fieldValues(key string) *fieldValues {
	name := strings.ToLower(key)
	tx := mm.txt()
	if fv, ok := tx.fields[name]; ok {
		return fv
	}
	if tx.fields == nil {
		tx.fields = make(map[string]*fieldValues)
	}
	fv := &fieldValues{}
	fields := mm.hdr().FieldsByKey(key)
	for fields.Next() {
		v := decodeHeaderValue(fields.Value())
		if isAddressField(key) {
			// SEARCH FROM/TO/CC/BCC match the addresses as ENVELOPE
			// shows them too: "user@host" finds "<user (c)@ (c) host>",
			// a group's member and a route address. One value per
			// field, folded once; a search key holds no line break.
			for _, a := range addressStrings(fields.Value()) {
				v += "\n" + a
			}
		}
		fv.decoded = append(fv.decoded, []byte(v))
	}
	tx.fields[name] = fv
	return fv
}

func (mm *matchMessage) headerContains(word string) bool {
	if (mm.text == nil || mm.text.headerText == nil) && rawHeaderLacks(mm.raw[:headerLen(mm.raw)], word) {
		return false
	}
	tx := mm.txt()
	if tx.headerText == nil {
		var b bytes.Buffer
		fields := mm.hdr().Fields()
		for fields.Next() {
			v := decodeHeaderValue(fields.Value())
			b.WriteString(fields.Key())
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\n")
		}
		tx.headerText = b.Bytes()
		if tx.headerText == nil {
			tx.headerText = []byte{}
		}
	}
	if isASCII(word) {
		return indexFoldASCII(tx.headerText, word) >= 0
	}
	if tx.headerFolded == nil {
		tx.headerFolded = mm.run.fold(tx.headerText)
	}
	return bytes.Contains(tx.headerFolded, mm.run.foldedKey(word))
}

func (mm *matchMessage) bodyContains(word string) bool {
	body := mm.raw
	if i := bytes.Index(body, []byte("\r\n\r\n")); i >= 0 {
		body = body[i+4:]
	} else if i := bytes.Index(body, []byte("\n\n")); i >= 0 {
		body = body[i+2:]
	}
	// Fast path: most text is stored as it reads. Only when the raw body
	// does not contain the word and the message has encoded parts is it
	// worth decoding MIME.
	if isASCII(word) {
		if indexFoldASCII(body, word) >= 0 {
			return true
		}
		if !mightBeEncoded(mm.raw) {
			return false
		}
	}
	tx := mm.txt()
	if tx.bodyText == nil {
		tx.bodyText = decodedText(mm.raw)
	}
	if isASCII(word) {
		return indexFoldASCII(tx.bodyText, word) >= 0
	}
	if tx.bodyFolded == nil {
		tx.bodyFolded = mm.run.fold(tx.bodyText)
	}
	return bytes.Contains(tx.bodyFolded, mm.run.foldedKey(word))
}

// decodedText is the concatenated text of a message's text/* parts,
// transfer- and charset-decoded. Broken parts are skipped, not fatal.
func decodedText(raw []byte) []byte {
	e, err := gomessage.Read(bytes.NewReader(raw))
	if e == nil {
		return []byte{}
	}
	_ = err // unknown charsets still give a readable entity
	var b bytes.Buffer
	// Not Entity.Walk: it has no depth limit (see maxMIMEDepth).
	walkText(&b, e, 0)
	if b.Len() == 0 {
		return []byte{}
	}
	return b.Bytes()
}

func walkText(b *bytes.Buffer, part *gomessage.Entity, depth int) {
	if mr := part.MultipartReader(); mr != nil {
		if depth >= maxMIMEDepth {
			return
		}
		for {
			// An unknown charset still gives a readable part; anything
			// else (the end, a broken part) ends the walk.
			p, _ := mr.NextPart()
			if p == nil {
				return
			}
			walkText(b, p, depth+1)
		}
	}
	mt, _, _ := part.Header.ContentType()
	if mt == "" || strings.HasPrefix(mt, "text/") || mt == "message/rfc822" {
		io.Copy(b, io.LimitReader(part.Body, 16<<20))
		b.WriteByte('\n')
	}
}

// decodeHeaderValue decodes RFC 2047 encoded words, keeping the raw value
// when they are malformed.
func decodeHeaderValue(v string) string {
	dec := mime.WordDecoder{CharsetReader: gomessage.CharsetReader}
	if d, err := dec.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// rawHeaderLacks reports whether the decoded header text (field names and
// decoded values, as headerContains builds it) cannot contain word, from
// the raw header alone: when the header has no encoded words, decoding
// changes nothing but line folding and the space after each colon, and a
// word without white space or colon cannot span either.
func rawHeaderLacks(rawHeader []byte, word string) bool {
	if !isASCII(word) || strings.ContainsAny(word, " \t\r\n:") || bytes.Contains(rawHeader, []byte("=?")) {
		return false
	}
	return indexFoldASCII(rawHeader, word) < 0
}

// mightBeEncoded reports whether an ASCII word could be in the decoded
// text of raw without being in its bytes: when a part has a transfer
// encoding, or a charset in which ASCII is not itself (an ASCII word in
// us-ascii, UTF-8, ISO-8859-x or ISO-2022-JP text is the same bytes).
func mightBeEncoded(raw []byte) bool {
	if indexFoldASCII(raw, "base64") >= 0 || indexFoldASCII(raw, "quoted-printable") >= 0 {
		return true
	}
	// Each charset= parameter, found by its '=' (rare in text that is not
	// quoted-printable).
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '=')
		if j < 0 {
			return false
		}
		i += j + 1
		if i < 8 || !equalFoldASCII(raw[i-8:i-1], "charset") {
			continue
		}
		v := raw[i:min(len(raw), i+8)]
		v = bytes.TrimLeft(v, "\"")
		for _, wide := range []string{"utf-16", "utf-32", "utf-7", "utf16", "utf32", "utf7", "ucs"} {
			if len(v) >= len(wide) && equalFoldASCII(v[:len(wide)], wide) {
				return true
			}
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// indexFoldASCII finds needle in hay ignoring ASCII case, without
// allocating a lower-cased copy of the message. Candidates are found with
// bytes.IndexByte (vectorized) for the needle's rarest byte, in either
// case, and then compared.
func indexFoldASCII(hay []byte, needle string) int {
	n := len(needle)
	if n == 0 {
		return 0
	}
	k := rarestByte(needle)
	lo, up := lowerASCII(needle[k]), upperASCII(needle[k])
	// nextLo and nextUp are the next positions of each case of the anchor
	// byte at or after i+k (len(hay) when there is none).
	nextLo, nextUp := -1, -1
	if lo == up {
		nextUp = len(hay)
	}
	last := len(hay) - n // last possible start
	for i := 0; i <= last; {
		if nextLo < i+k {
			if j := bytes.IndexByte(hay[i+k:last+k+1], lo); j >= 0 {
				nextLo = i + k + j
			} else {
				nextLo = len(hay)
			}
		}
		if nextUp < i+k {
			if j := bytes.IndexByte(hay[i+k:last+k+1], up); j >= 0 {
				nextUp = i + k + j
			} else {
				nextUp = len(hay)
			}
		}
		i = min(nextLo, nextUp) - k
		if i > last {
			return -1
		}
		if equalFoldASCII(hay[i:i+n], needle) {
			return i
		}
		i++
	}
	return -1
}

// rarestByte is the position of the byte of s least likely in mail text:
// punctuation and digits before letters, letters by English frequency.
func rarestByte(s string) int {
	const common = " etaoinshrdlcumwfgypbvkjxqz" // most frequent first
	best, bestRank := 0, -1
	for i := 0; i < len(s); i++ {
		c := lowerASCII(s[i])
		rank := len(common) // not a letter nor space: rare
		if j := strings.IndexByte(common, c); j >= 0 {
			rank = j
		}
		if rank > bestRank {
			best, bestRank = i, rank
		}
	}
	return best
}

func equalFoldASCII(b []byte, s string) bool {
	for j := 0; j < len(s); j++ {
		if lowerASCII(b[j]) != lowerASCII(s[j]) {
			return false
		}
	}
	return true
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// savedPartial is $ after a SEARCH RETURN (SAVE PARTIAL ...) without
// COUNT (RFC 9394 section 3.2): the UIDs PARTIAL returned, and those of
// MIN and MAX when asked for.
func savedPartial(window []uint32, data *imap.SearchData, options *imap.SearchOptions, all imap.UIDSet) imap.UIDSet {
	var saved imap.UIDSet
	for _, u := range window {
		saved.AddNum(imap.UID(u))
	}
	// MIN and MAX are the lowest and highest found: the ends of all.
	if n := len(all); n > 0 && data.Count > 0 {
		if options.ReturnMin {
			saved.AddNum(all[0].Start)
		}
		if options.ReturnMax {
			saved.AddNum(all[n-1].Stop)
		}
	}
	if saved == nil {
		saved = imap.UIDSet{}
	}
	return saved
}
