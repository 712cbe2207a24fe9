package imapserver

// certmail patch: CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 section 4):
// the CONTEXT, UPDATE and PARTIAL return options, PARTIAL results,
// unsolicited ADDTO/REMOVEFROM, CANCELUPDATE and NOUPDATE.

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionContext is a session that keeps the results of searches run with
// RETURN (UPDATE) up to date (RFC 5267 section 4.3). The searching
// command's tag, the context's name, is Conn.Tag while Search or Sort
// runs; the session writes ADDTO and REMOVEFROM with
// UpdateWriter.WriteSearchUpdate as it polls, and a REMOVEFROM in message
// sequence numbers before the EXPUNGE of the message it names
// (SessionTracker.SetExpungeHook).
type SessionContext interface {
	Session
	// CancelUpdate ends the updates of the contexts named (RFC 5267
	// section 4.3.5). A tag that names no context is an error.
	CancelUpdate(tags []string) error
}

// partialSupported reports whether the PARTIAL extension (RFC 9394) is on:
// the server lists it and the session keeps contexts, whose PARTIAL
// return option it extends.
func (c *Conn) partialSupported() bool {
	_, ok := c.session.(SessionContext)
	return ok && c.server.options.caps().Has(imap.CapPartial)
}

// Tag is the tag of the command being handled (certmail patch).
func (c *Conn) Tag() string {
	return c.tag
}

// ParsePartialRange parses a PARTIAL return option's range (RFC 5267
// section 4.4: nz-number ":" nz-number, either way round; RFC 9394
// section 3.1: both negative, counting from the last result).
func ParsePartialRange(s string) (imap.SearchReturnPartial, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return imap.SearchReturnPartial{}, fmt.Errorf("partial range %q: want first:last", s)
	}
	x, errA := parsePartialBound(a)
	y, errB := parsePartialBound(b)
	if errA != nil || errB != nil {
		return imap.SearchReturnPartial{}, fmt.Errorf("partial range %q: want non-zero numbers, both positive or both negative", s)
	}
	if (x < 0) != (y < 0) {
		return imap.SearchReturnPartial{}, fmt.Errorf("partial range %q: both ends must be positive or both negative", s)
	}
	return imap.SearchReturnPartial{Start: min(x, y), Stop: max(x, y)}, nil
}

func parsePartialBound(s string) (int32, error) {
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || digits[0] == '0' || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, fmt.Errorf("invalid partial bound %q", s)
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || n > math.MaxInt32 {
		return 0, fmt.Errorf("invalid partial bound %q", s)
	}
	if neg {
		return -int32(n), nil
	}
	return int32(n), nil
}

// FormatPartialRange writes a range as a client sends it: low:high, or
// for ranges from the end -1:-100 (RFC 9394 section 3.1).
func FormatPartialRange(r imap.SearchReturnPartial) string {
	if r.Start < 0 {
		return fmt.Sprintf("%d:%d", r.Stop, r.Start)
	}
	return fmt.Sprintf("%d:%d", r.Start, r.Stop)
}

func readPartialRange(dec *imapwire.Decoder) (*imap.SearchReturnPartial, error) {
	var s string
	if !dec.ExpectSP() {
		return nil, dec.Err()
	}
	if !dec.Func(&s, func(ch byte) bool {
		return ch == ':' || ch == '-' || ch == '*' || (ch >= '0' && ch <= '9')
	}) {
		return nil, &imapwire.DecoderExpectError{Message: "expected partial range"}
	}
	r, err := ParsePartialRange(s)
	if err != nil {
		return nil, &imapwire.DecoderExpectError{Message: err.Error()}
	}
	return &r, nil
}

// PartialWindow returns the part of a result of n entries that r selects,
// as indexes [from, to) into it (RFC 5267 section 4.4: a range beyond the
// results selects what there is of it; RFC 9394: negative ranges count
// from the end).
func PartialWindow(r imap.SearchReturnPartial, n int) (from, to int) {
	var lo, hi int64
	if r.Start < 0 {
		lo, hi = int64(n)+int64(r.Start), int64(n)+int64(r.Stop)+1
	} else {
		lo, hi = int64(r.Start)-1, int64(r.Stop)
	}
	lo, hi = max(lo, 0), min(hi, int64(n))
	if lo >= hi {
		return 0, 0
	}
	return int(lo), int(hi)
}

// PartialOfSet returns the results of a number set (in ascending order)
// r selects, without expanding the set.
func PartialOfSet(set imap.NumSet, r imap.SearchReturnPartial) []uint32 {
	var ranges [][2]uint32
	switch s := set.(type) {
	case imap.SeqSet:
		for _, x := range s {
			ranges = append(ranges, [2]uint32{x.Start, x.Stop})
		}
	case imap.UIDSet:
		for _, x := range s {
			ranges = append(ranges, [2]uint32{uint32(x.Start), uint32(x.Stop)})
		}
	}
	n := 0
	for _, x := range ranges {
		n += int(x[1] - x[0] + 1)
	}
	from, to := PartialWindow(r, n)
	var out []uint32
	pos := 0
	for _, x := range ranges {
		size := int(x[1] - x[0] + 1)
		if pos+size > from && pos < to {
			lo := max(from-pos, 0)
			hi := min(to-pos, size)
			for i := lo; i < hi; i++ {
				out = append(out, x[0]+uint32(i))
			}
		}
		pos += size
		if pos >= to {
			break
		}
	}
	return out
}

// writePartial writes the PARTIAL return data item: the range and the
// results in it in their order, or NIL.
func writePartial(enc *imapwire.Encoder, r imap.SearchReturnPartial, nums []uint32) {
	enc.SP().Atom("PARTIAL").SP().Special('(').Atom(FormatPartialRange(r)).SP()
	if len(nums) == 0 {
		enc.NIL()
	} else {
		enc.Atom(orderedSet(nums))
	}
	enc.Special(')')
}

// checkContextOptions refuses the CONTEXT return options when the session
// keeps no contexts, and what RFC 5267 section 4.4 forbids: PARTIAL and
// ALL together.
func (c *Conn) checkContextOptions(options *imap.SearchOptions) error {
	if !options.ReturnContext && !options.ReturnUpdate && options.ReturnPartial == nil {
		return nil
	}
	if _, ok := c.session.(SessionContext); !ok {
		return newClientBugError("unknown SEARCH RETURN option")
	}
	if options.ReturnPartial != nil && options.ReturnAll {
		return &imapwire.DecoderExpectError{Message: "PARTIAL and ALL cannot be used together"}
	}
	return nil
}

// SearchUpdatePair is one pair of an ADDTO or REMOVEFROM return data item:
// a context position (0 for a SEARCH) and the messages, in the result's
// order.
type SearchUpdatePair struct {
	Position uint32
	Nums     []uint32
}

// WriteSearchUpdate writes an unsolicited ESEARCH with ADDTO (remove
// false) or REMOVEFROM for the context tag (RFC 5267 sections 4.3.3,
// 4.3.4).
func (w *UpdateWriter) WriteSearchUpdate(tag string, uid, remove bool, pairs []SearchUpdatePair) error {
	if len(pairs) == 0 {
		return nil
	}
	enc := newResponseEncoder(w.conn)
	defer enc.end()
	enc.Atom("*").SP().Atom("ESEARCH").SP().Special('(').Atom("TAG").SP().String(tag).Special(')')
	if uid {
		enc.SP().Atom("UID")
	}
	item := "ADDTO"
	if remove {
		item = "REMOVEFROM"
	}
	enc.SP().Atom(item).SP().Special('(')
	for i, p := range pairs {
		if i > 0 {
			enc.SP()
		}
		enc.Number(p.Position).SP().Atom(orderedSet(p.Nums))
	}
	enc.Special(')')
	return enc.CRLF()
}

// WriteNoUpdate writes the untagged NO [NOUPDATE "tag"] of a searching
// command whose UPDATE the server refuses (RFC 5267 section 4.3.1); the
// command itself goes on.
func (c *Conn) WriteNoUpdate(tag, text string) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("NO").SP().Special('[').Atom("NOUPDATE").SP().Quoted(tag).Special(']')
	enc.SP().Text(text)
	return enc.CRLF()
}

// handleCancelUpdate answers CANCELUPDATE 1*(SP quoted) (RFC 5267
// section 4.3.5).
func (c *Conn) handleCancelUpdate(dec *imapwire.Decoder) error {
	var tags []string
	for dec.SP() {
		var tag string
		if !dec.ExpectString(&tag) {
			return dec.Err()
		}
		tags = append(tags, tag)
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if len(tags) == 0 {
		return &imapwire.DecoderExpectError{Message: "CANCELUPDATE needs at least one tag"}
	}
	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return err
	}
	session, ok := c.session.(SessionContext)
	if !ok {
		return newClientBugError("CANCELUPDATE is not supported")
	}
	return session.CancelUpdate(tags)
}
