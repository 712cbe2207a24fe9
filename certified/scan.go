package certified

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrUnclearRequest wraps every refusal of FindRequest: the header block
// holds something that a mail reader may show as a Certified-Delivery
// field, but not in a form every reader reads alike.
var ErrUnclearRequest = errors.New("unclear certification request")

// FindRequest finds the certification request (the Certified-Delivery
// field) in M's header block, the bytes every reader of M sees, and
// decides for every path that takes M in (LMTP, certmail deliver, the HTTP
// API, IMAP APPEND).
//
// It fails closed. Mail readers do not agree on where a header block ends
// or what a field is: Go's net/mail rejects a block with one line without
// a colon, and a check built on it stored such a message as ordinary mail
// although Thunderbird, which skips the bad line, shows the
// Certified-Delivery field above it; Thunderbird and go-message also take
// "Certified-Delivery :" (RFC 5322 §4.5.2 obsolete syntax) for the field,
// Python's email package splits lines at a bare CR, and an MTA may break
// an over-long line. So the raw block is scanned tolerantly for anything
// that any of them might show as the field (a line or an unfolded field
// whose name, stripped of everything but letters, reads
// "certifieddelivery"), and then:
//
//   - nothing found: not a request (found false, nil error);
//   - exactly one field, named Certified-Delivery in any case (field names
//     are case-insensitive, RFC 5322 §1.2.2), in a header block that
//     parses strictly (RFC 5322 §2.2, §3.6.8: every line a field or a
//     continuation, name and colon adjacent, no bare CR or NUL, no
//     whitespace-only line) and by Go's net/mail, with nothing else
//     resembling it: found, with the field's unfolded value;
//   - anything else: an error wrapping ErrUnclearRequest that says which
//     line and what is wrong, for the 550 5.6.0 reply.
//
// An encoded word (RFC 2047) is never decoded in a field name by any
// reader, so "=?utf-8?q?Certified-Delivery?=:" is not a request.
func FindRequest(raw []byte) (value string, found bool, err error) {
	block, scanEnd := headerExtent(raw)
	mentions := findMentions(raw[:scanEnd])
	if len(mentions) == 0 {
		return "", false, nil
	}
	fields, err := strictFields(block)
	if err != nil {
		return "", false, unclear("%v", err)
	}
	var req *field
	for i := range fields {
		if strings.EqualFold(fields[i].name, HeaderName) {
			if req != nil {
				return "", false, unclear("line %d: %s given twice (also line %d); give it once", fields[i].line, HeaderName, req.line)
			}
			req = &fields[i]
		}
	}
	for _, m := range mentions {
		switch {
		case m.off >= len(block):
			return "", false, unclear("line %d: %+q after the end of the header block: put %s: in the header", m.line, m.text, HeaderName)
		case req == nil || m.off != req.off:
			return "", false, unclear("line %d: %+q looks like a %s field but is not one: write it as %s: deadline=...", m.line, m.text, HeaderName, HeaderName)
		}
	}
	if req == nil {
		// Every mention is checked against req above; unreachable, but a
		// nil request must never pass as "no request".
		return "", false, unclear("no readable %s field", HeaderName)
	}
	// The rest of certmail (the stub's reveal, IMAP) reads M with Go's
	// parser: it must read this block too, and see the same field.
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", false, unclear("the header does not parse: %v", err)
	}
	vals := msg.Header[HeaderName]
	if len(vals) != 1 {
		return "", false, unclear("%s: found %d times by the message parser", HeaderName, len(vals))
	}
	return vals[0], true, nil
}

func unclear(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnclearRequest, fmt.Sprintf(format, args...))
}

// headerExtent returns the header block as Go and most readers take it (up
// to the first empty line, RFC 5322 §2.1; lines may end in LF or CRLF)
// and how far to look for anything that resembles the request, which goes
// further where readers may disagree: past empty lines at the very start
// (the block is empty, but a reader that skips them would find fields),
// and, in a block whose lines end in CRLF, up to the first CRLF CRLF (a
// reader that takes only CRLF as a line end does not end the block at a
// bare LF LF).
func headerExtent(raw []byte) (block []byte, scanEnd int) {
	end := emptyLine(raw, 0)
	block = raw[:end]
	start := 0
	for start < len(raw) && (raw[start] == '\r' || raw[start] == '\n') {
		start++
	}
	scanEnd = end
	if start > 0 {
		scanEnd = emptyLine(raw, start)
	}
	if i := bytes.IndexByte(raw[start:], '\n'); i > 0 && raw[start+i-1] == '\r' {
		crlfEnd := len(raw)
		if j := bytes.Index(raw[start:], []byte("\r\n\r\n")); j >= 0 {
			crlfEnd = start + j + 2
		}
		scanEnd = max(scanEnd, crlfEnd)
	}
	return block, scanEnd
}

// emptyLine returns where the header block that starts at from ends: after
// the LF that precedes the first empty line (LF or CRLF), or len(raw).
func emptyLine(raw []byte, from int) int {
	if from < len(raw) && raw[from] == '\n' || bytes.HasPrefix(raw[from:], []byte("\r\n")) {
		return from
	}
	for i := from; i < len(raw); i++ {
		if raw[i] != '\n' {
			continue
		}
		if i+1 < len(raw) && raw[i+1] == '\n' || bytes.HasPrefix(raw[i+1:], []byte("\r\n")) {
			return i + 1
		}
	}
	return len(raw)
}

// mention is a place where some reader may see a Certified-Delivery field.
type mention struct {
	off  int // offset of the line (or field) in M
	line int // its line number (LF-counted, from 1)
	text string
}

const squeezedName = "certifieddelivery"

// maxLine is RFC 5322 §2.1.1's limit; an MTA may break a longer line, and
// any piece of it may then start a line of its own.
const maxLine = 998

// findMentions lists the lines or unfolded fields of hdr that a tolerant
// reader might take for a Certified-Delivery field (at most two: one more
// than the request itself). Lines are split at LF,
// CRLF and a bare CR (Python's email package and Thunderbird break there),
// and also at NUL (C readers stop a string there); a field's continuation
// lines are joined without the line break and indentation (readers that
// unfold by deleting CRLF WSP); the name is what comes before the first
// colon, without leading whitespace, reduced to its letters in lower case.
func findMentions(hdr []byte) []mention {
	var out []mention
	add := func(off int, text []byte) {
		if len(out) >= 2 {
			return
		}
		for _, m := range out {
			if m.off == off {
				return
			}
		}
		out = append(out, mention{off: off, line: bytes.Count(hdr[:off], []byte("\n")) + 1, text: clip(text)})
	}
	// Two places are enough to refuse (one of them is not the request),
	// and stopping there keeps a block of many look-alikes linear.
	for _, breakNUL := range []bool{false, true} {
		lines := splitLines(hdr, breakNUL)
		for _, l := range lines {
			if mentionsName(l.text) {
				add(l.off, l.text)
			}
			if len(l.text) > maxLine && bytes.Contains(squeeze(l.text), []byte(squeezedName)) {
				add(l.off, l.text)
			}
		}
		// Unfolded: a field and its continuation lines as one.
		for i := 0; i < len(lines); {
			j := i + 1
			joined := append([]byte(nil), lines[i].text...)
			for j < len(lines) && len(lines[j].text) > 0 && isWSP(lines[j].text[0]) {
				joined = append(joined, bytes.TrimLeft(lines[j].text, " \t")...)
				j++
			}
			if j > i+1 && mentionsName(joined) {
				add(lines[i].off, joined)
			}
			i = j
		}
	}
	return out
}

type rawLine struct {
	off  int
	text []byte
}

// splitLines splits at LF, CRLF, a bare CR and (if breakNUL) NUL; empty
// pieces are dropped.
func splitLines(b []byte, breakNUL bool) []rawLine {
	var out []rawLine
	start := 0
	for i := 0; i <= len(b); i++ {
		if i < len(b) {
			c := b[i]
			if c != '\n' && c != '\r' && !(breakNUL && c == 0) {
				continue
			}
		}
		if i > start {
			out = append(out, rawLine{off: start, text: b[start:i]})
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			i++
		}
		start = i + 1
	}
	return out
}

// mentionsName reports whether the text before the first colon of line
// reads as Certified-Delivery to a tolerant eye.
func mentionsName(line []byte) bool {
	name, _, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return false
	}
	return string(squeeze(name)) == squeezedName
}

// squeeze keeps the letters of b, in ASCII lower case. A letter outside
// ASCII counts as the ASCII letters its case mappings give: a reader that
// compares names with a Unicode ToLower or ToUpper takes "CERTİFIED" (Go
// lower-cases U+0130 to "i") or "Certıfied" (U+0131 upper-cases to "I")
// for the name, and one that upper-cases fully turns the ligature "ﬁ"
// into "FI". Other bytes are dropped.
func squeeze(b []byte) []byte {
	out := make([]byte, 0, len(squeezedName))
	for len(b) > 0 {
		c := b[0]
		if c < utf8.RuneSelf {
			switch {
			case 'a' <= c && c <= 'z':
				out = append(out, c)
			case 'A' <= c && c <= 'Z':
				out = append(out, c+'a'-'A')
			}
			b = b[1:]
			continue
		}
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if r == utf8.RuneError {
			continue
		}
		out = append(out, asciiLetters(r)...)
	}
	return out
}

// ligatures are the letters whose full upper-casing (Unicode SpecialCasing)
// is ASCII letters.
var ligatures = map[rune]string{'ﬀ': "ff", 'ﬁ': "fi", 'ﬂ': "fl", 'ﬃ': "ffi", 'ﬄ': "ffl", 'ﬅ': "st", 'ﬆ': "st"}

// asciiLetters is what a non-ASCII rune may turn into under case mapping
// or width folding, if that is ASCII letters; else nothing.
func asciiLetters(r rune) []byte {
	if l, ok := ligatures[r]; ok {
		return []byte(l)
	}
	switch {
	case 'Ａ' <= r && r <= 'Ｚ':
		return []byte{byte(r-'Ａ') + 'a'}
	case 'ａ' <= r && r <= 'ｚ':
		return []byte{byte(r-'ａ') + 'a'}
	}
	for _, m := range []rune{unicode.ToLower(r), unicode.ToUpper(r)} {
		if m < utf8.RuneSelf && unicode.IsLetter(m) {
			return []byte{byte(unicode.ToLower(m))}
		}
	}
	return nil
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// ftext reports whether name is a field name: printable US-ASCII but the
// colon (RFC 5322 §3.6.8).
func ftext(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// clip shortens a line for a reply (callers quote it with %+q, which
// escapes control and non-ASCII bytes: an SMTP reply is ASCII, RFC 5321
// section 4.2).
func clip(b []byte) string {
	if len(b) > 60 {
		b = b[:60]
	}
	return string(b)
}

// field is one field of a strictly parsed header block.
type field struct {
	name string
	off  int // offset of its first line in M
	line int
}

// strictFields parses a header block by RFC 5322's rules without the
// obsolete syntax that readers handle differently (§2.2, §3.6.8, §4.5):
// lines end in CRLF or LF, and each is a field "name:" with the name of
// printable ASCII and no whitespace before the colon, or a continuation
// line that starts with a space or tab and holds more than whitespace.
func strictFields(block []byte) ([]field, error) {
	var out []field
	off := 0
	for n := 1; off < len(block); n++ {
		end := bytes.IndexByte(block[off:], '\n')
		if end < 0 {
			end = len(block) - off
		}
		line := block[off : off+end]
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case bytes.IndexByte(line, '\r') >= 0:
			return nil, fmt.Errorf("line %d: a bare CR (lines must end in CRLF or LF)", n)
		case bytes.IndexByte(line, 0) >= 0:
			return nil, fmt.Errorf("line %d: a NUL byte in the header", n)
		case len(line) > 0 && isWSP(line[0]):
			if len(bytes.TrimLeft(line, " \t")) == 0 {
				return nil, fmt.Errorf("line %d: a line of only whitespace in the header (obsolete syntax, RFC 5322 section 4.5.3)", n)
			}
			if len(out) == 0 {
				return nil, fmt.Errorf("line %d: the header's first line begins with whitespace", n)
			}
		default:
			name, _, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				return nil, fmt.Errorf("line %d: %+q is not a header field (no colon)", n, clip(line))
			}
			if len(name) == 0 {
				return nil, fmt.Errorf("line %d: a field without a name", n)
			}
			if bare := bytes.TrimRight(name, " \t"); len(bare) < len(name) && ftext(bare) {
				return nil, fmt.Errorf("line %d: whitespace between the field name %+q and its colon (obsolete syntax, RFC 5322 section 4.5.2)", n, clip(bare))
			}
			if !ftext(name) {
				return nil, fmt.Errorf("line %d: field name %+q has a byte no field name may hold (RFC 5322 section 3.6.8)", n, clip(name))
			}
			out = append(out, field{name: string(name), off: off, line: n})
		}
		off += end + 1
	}
	return out, nil
}
