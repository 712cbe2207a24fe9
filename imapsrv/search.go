package imapsrv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
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
	var all []target
	box := sess.box
	box.mu.Lock()
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
	var seqSet imap.SeqSet
	var uidSet imap.UIDSet
	for _, t := range all {
		ok, err := sess.matchOne(t, &c)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
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
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		if num > data.Max {
			data.Max = num
		}
		data.Count++
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

// matchMessage evaluates criteria against one message, reading its bytes
// only if a criterion needs them, and at most once.
type matchMessage struct {
	sess   *session
	t      target
	raw    []byte
	header *textproto.Header
	loaded bool
	gone   bool
	// inPlace: load asks matchOne to read the bytes in place.
	inPlace bool
	// Decoded text, computed on first need.
	bodyText   *string
	headerText *string
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
func (sess *session) matchOne(t target, c *imap.SearchCriteria) (bool, error) {
	mm := matchMessage{sess: sess, t: t, inPlace: t.msg.Size < zeroCopyMax}
	ok, err := mm.match(c)
	if !errors.Is(err, errNeedRaw) {
		return ok, err
	}
	err = sess.srv.store.ReadRaw(t.msg.Blob, func(raw []byte) error {
		mm = matchMessage{sess: sess, t: t, raw: raw, loaded: true}
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
	raw, err := mm.sess.srv.store.Raw(mm.t.msg.Blob)
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
		if !m.HasFlag(string(f)) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if m.HasFlag(string(f)) {
			return false, nil
		}
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
		if !mm.headerMatches(hf.Key, hf.Value) {
			return false, nil
		}
	}
	for _, word := range c.Body {
		if err := mm.load(); err != nil || mm.gone {
			return false, err
		}
		if !mm.bodyContains(word) {
			return false, nil
		}
	}
	for _, word := range c.Text {
		if err := mm.load(); err != nil || mm.gone {
			return false, err
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

func (mm *matchMessage) headerMatches(key, value string) bool {
	fields := mm.hdr().FieldsByKey(key)
	if value == "" {
		return fields.Len() > 0
	}
	for fields.Next() {
		v := decodeHeaderValue(fields.Value())
		if containsFold(v, value) {
			return true
		}
	}
	return false
}

func (mm *matchMessage) headerContains(word string) bool {
	if mm.headerText == nil && rawHeaderLacks(mm.raw[:headerLen(mm.raw)], word) {
		return false
	}
	if mm.headerText == nil {
		var b strings.Builder
		fields := mm.hdr().Fields()
		for fields.Next() {
			v := decodeHeaderValue(fields.Value())
			b.WriteString(fields.Key())
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\n")
		}
		s := b.String()
		mm.headerText = &s
	}
	return containsFold(*mm.headerText, word)
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
	if isASCII(word) && indexFoldASCII(body, word) >= 0 {
		return true
	}
	if isASCII(word) && !mightBeEncoded(mm.raw) {
		return false
	}
	if mm.bodyText == nil {
		s := decodedText(mm.raw)
		mm.bodyText = &s
	}
	return containsFold(*mm.bodyText, word)
}

// decodedText is the concatenated text of a message's text/* parts,
// transfer- and charset-decoded. Broken parts are skipped, not fatal.
func decodedText(raw []byte) string {
	e, err := gomessage.Read(bytes.NewReader(raw))
	if e == nil {
		return ""
	}
	_ = err // unknown charsets still give a readable entity
	var b strings.Builder
	// Not Entity.Walk: it has no depth limit (see maxMIMEDepth).
	walkText(&b, e, 0)
	return b.String()
}

func walkText(b *strings.Builder, part *gomessage.Entity, depth int) {
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

func containsFold(s, substr string) bool {
	if isASCII(substr) {
		return indexFoldASCII([]byte(s), substr) >= 0
	}
	return strings.Contains(strings.ToLower(s), strings.ToLower(substr))
}
