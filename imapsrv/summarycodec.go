package imapsrv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/emersion/go-imap/v2"
)

// The summary's own binary form. Summaries were gob streams, and gob
// sends the types with every stream: each decode compiled them again,
// and decoding the summaries of FETCH ENVELOPE/BODYSTRUCTURE took a third
// of the server's CPU under imaptest's stress. This form is read field by
// field with no reflection. summaryMagic starts it (a gob stream never
// starts with a zero byte); summaries stored as gob are still read.
const summaryMagic = "\x00B1"

// maxSummaryDepth bounds the nesting of body structures (multiparts and
// message/rfc822 parts) the codec writes and reads; a deeper summary is
// stored as gob, and a stored one claiming more is refused.
const maxSummaryDepth = 64

var errSummaryTooDeep = errors.New("body structure nested too deeply")

// Presence bits of a single part's optional members.
const (
	hasRFC822 = 1 << iota
	hasText
	hasExtended
	hasDisposition
)

func encodeSummary(dst []byte, s *summary) ([]byte, error) {
	dst = append(dst, summaryMagic...)
	dst = appendEnvelope(dst, s.Envelope)
	dst, err := appendBodyStructure(dst, s.BodyStructure, 0)
	if err != nil {
		return nil, err
	}
	dst = appendString(dst, s.Preview)
	return append(dst, s.PreviewVersion), nil
}

func appendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

func appendString(dst []byte, s string) []byte {
	return append(appendUvarint(dst, uint64(len(s))), s...)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = appendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// appendParams writes a map in key order, so the same summary always
// encodes to the same bytes: its size plus one, zero for nil (an empty
// map and none are told apart, as gob did).
func appendParams(dst []byte, m map[string]string) []byte {
	if m == nil {
		return append(dst, 0)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = appendUvarint(dst, uint64(len(keys))+1)
	for _, k := range keys {
		dst = appendString(appendString(dst, k), m[k])
	}
	return dst
}

func appendAddresses(dst []byte, as []imap.Address) []byte {
	dst = appendUvarint(dst, uint64(len(as)))
	for _, a := range as {
		dst = appendString(dst, a.Name)
		dst = appendString(dst, a.Route)
		dst = appendString(dst, a.Mailbox)
		dst = appendString(dst, a.Host)
	}
	return dst
}

// appendEnvelope writes an envelope; nil is a zero byte, present a one.
func appendEnvelope(dst []byte, e *imap.Envelope) []byte {
	if e == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	if e.Date.IsZero() {
		dst = appendString(dst, "")
	} else {
		// time.Time's own form, as gob stored it: the instant and the
		// zone offset, which ENVELOPE shows.
		b, err := e.Date.MarshalBinary()
		if err != nil {
			b = nil // an offset that is not whole minutes: no date
		}
		dst = appendString(dst, string(b))
	}
	dst = appendString(dst, e.Subject)
	for _, l := range [][]imap.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		dst = appendAddresses(dst, l)
	}
	dst = appendStrings(dst, e.InReplyTo)
	return appendString(dst, e.MessageID)
}

func appendDisposition(dst []byte, d *imap.BodyStructureDisposition) []byte {
	return appendParams(appendString(dst, d.Value), d.Params)
}

// appendBodyStructure writes a part: a kind byte (0 none, 1 single, 2
// multipart), then its fields.
func appendBodyStructure(dst []byte, bs imap.BodyStructure, depth int) ([]byte, error) {
	if depth > maxSummaryDepth {
		return nil, errSummaryTooDeep
	}
	var err error
	switch b := bs.(type) {
	case *imap.BodyStructureSinglePart:
		if b == nil {
			return append(dst, 0), nil
		}
		dst = append(dst, 1)
		for _, s := range []string{b.Type, b.Subtype} {
			dst = appendString(dst, s)
		}
		dst = appendParams(dst, b.Params)
		for _, s := range []string{b.ID, b.Description, b.Encoding} {
			dst = appendString(dst, s)
		}
		dst = appendUvarint(dst, uint64(b.Size))
		var bits byte
		if b.MessageRFC822 != nil {
			bits |= hasRFC822
		}
		if b.Text != nil {
			bits |= hasText
		}
		if b.Extended != nil {
			bits |= hasExtended
			if b.Extended.Disposition != nil {
				bits |= hasDisposition
			}
		}
		dst = append(dst, bits)
		if m := b.MessageRFC822; m != nil {
			dst = appendEnvelope(dst, m.Envelope)
			if dst, err = appendBodyStructure(dst, m.BodyStructure, depth+1); err != nil {
				return nil, err
			}
			dst = binary.AppendVarint(dst, m.NumLines)
		}
		if b.Text != nil {
			dst = binary.AppendVarint(dst, b.Text.NumLines)
		}
		if x := b.Extended; x != nil {
			if x.Disposition != nil {
				dst = appendDisposition(dst, x.Disposition)
			}
			dst = appendStrings(dst, x.Language)
			dst = appendString(dst, x.Location)
		}
		return dst, nil
	case *imap.BodyStructureMultiPart:
		if b == nil {
			return append(dst, 0), nil
		}
		dst = append(dst, 2)
		dst = appendUvarint(dst, uint64(len(b.Children)))
		for _, c := range b.Children {
			if dst, err = appendBodyStructure(dst, c, depth+1); err != nil {
				return nil, err
			}
		}
		dst = appendString(dst, b.Subtype)
		var bits byte
		if b.Extended != nil {
			bits |= hasExtended
			if b.Extended.Disposition != nil {
				bits |= hasDisposition
			}
		}
		dst = append(dst, bits)
		if x := b.Extended; x != nil {
			dst = appendParams(dst, x.Params)
			if x.Disposition != nil {
				dst = appendDisposition(dst, x.Disposition)
			}
			dst = appendStrings(dst, x.Language)
			dst = appendString(dst, x.Location)
		}
		return dst, nil
	case nil:
		return append(dst, 0), nil
	default:
		return nil, fmt.Errorf("body structure of type %T", bs)
	}
}

// summaryReader reads the binary form; the first error sticks, and every
// count is checked against the bytes left, so a damaged record fails
// rather than allocating without bound.
type summaryReader struct {
	b   []byte
	err error
}

var errSummaryShort = errors.New("summary record cut short")

func (r *summaryReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *summaryReader) byte() byte {
	if len(r.b) == 0 {
		r.fail(errSummaryShort)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *summaryReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errSummaryShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *summaryReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errSummaryShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a number of items each taking at least min bytes.
func (r *summaryReader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/min) {
		r.fail(errSummaryShort)
		return 0
	}
	return int(n)
}

func (r *summaryReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errSummaryShort)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *summaryReader) strings() []string {
	n := r.count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.string()
	}
	return out
}

func (r *summaryReader) params() map[string]string {
	if len(r.b) > 0 && r.b[0] == 0 {
		r.b = r.b[1:]
		return nil
	}
	n := r.count(2)
	if r.err != nil {
		return nil
	}
	if n == 0 {
		r.fail(errors.New("bad parameter count"))
		return nil
	}
	n--
	m := make(map[string]string, n)
	for range n {
		k := r.string()
		m[k] = r.string()
	}
	return m
}

func (r *summaryReader) addresses() []imap.Address {
	n := r.count(4)
	if n == 0 {
		return nil
	}
	out := make([]imap.Address, n)
	for i := range out {
		out[i] = imap.Address{Name: r.string(), Route: r.string(), Mailbox: r.string(), Host: r.string()}
	}
	return out
}

func (r *summaryReader) envelope() *imap.Envelope {
	switch r.byte() {
	case 0:
		return nil
	case 1:
	default:
		r.fail(errors.New("bad envelope marker"))
		return nil
	}
	e := &imap.Envelope{}
	if d := r.string(); d != "" {
		if err := e.Date.UnmarshalBinary([]byte(d)); err != nil {
			r.fail(fmt.Errorf("envelope date: %w", err))
		}
	}
	e.Subject = r.string()
	for _, l := range []*[]imap.Address{&e.From, &e.Sender, &e.ReplyTo, &e.To, &e.Cc, &e.Bcc} {
		*l = r.addresses()
	}
	e.InReplyTo = r.strings()
	e.MessageID = r.string()
	return e
}

func (r *summaryReader) disposition() *imap.BodyStructureDisposition {
	return &imap.BodyStructureDisposition{Value: r.string(), Params: r.params()}
}

func (r *summaryReader) bodyStructure(depth int) imap.BodyStructure {
	if depth > maxSummaryDepth {
		r.fail(errSummaryTooDeep)
		return nil
	}
	switch r.byte() {
	case 0:
		return nil
	case 1:
		b := &imap.BodyStructureSinglePart{Type: r.string(), Subtype: r.string(), Params: r.params(),
			ID: r.string(), Description: r.string(), Encoding: r.string()}
		size := r.uvarint()
		if size > 1<<32-1 {
			r.fail(errors.New("part size out of range"))
		}
		b.Size = uint32(size)
		bits := r.byte()
		if bits&hasRFC822 != 0 {
			m := &imap.BodyStructureMessageRFC822{Envelope: r.envelope()}
			m.BodyStructure = r.bodyStructure(depth + 1)
			m.NumLines = r.varint()
			b.MessageRFC822 = m
		}
		if bits&hasText != 0 {
			b.Text = &imap.BodyStructureText{NumLines: r.varint()}
		}
		if bits&hasExtended != 0 {
			x := &imap.BodyStructureSinglePartExt{}
			if bits&hasDisposition != 0 {
				x.Disposition = r.disposition()
			}
			x.Language = r.strings()
			x.Location = r.string()
			b.Extended = x
		}
		return b
	case 2:
		b := &imap.BodyStructureMultiPart{}
		if n := r.count(1); n > 0 {
			b.Children = make([]imap.BodyStructure, 0, n)
			for range n {
				b.Children = append(b.Children, r.bodyStructure(depth+1))
			}
		}
		b.Subtype = r.string()
		bits := r.byte()
		if bits&hasExtended != 0 {
			x := &imap.BodyStructureMultiPartExt{Params: r.params()}
			if bits&hasDisposition != 0 {
				x.Disposition = r.disposition()
			}
			x.Language = r.strings()
			x.Location = r.string()
			b.Extended = x
		}
		return b
	default:
		r.fail(errors.New("bad body structure marker"))
		return nil
	}
}

// decodeSummaryBinary reads what encodeSummary wrote, after the magic.
func decodeSummaryBinary(b []byte) (*summary, error) {
	r := &summaryReader{b: b}
	s := &summary{Envelope: r.envelope()}
	s.BodyStructure = r.bodyStructure(0)
	s.Preview = r.string()
	s.PreviewVersion = r.byte()
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("decoding summary: %w", r.err)
	}
	return s, nil
}
