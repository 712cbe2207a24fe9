package imapsrv

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"
)

// Messages are stored byte for byte, and FETCH of the whole message, its
// header or its text must return those bytes: imapserver.ExtractBodySection
// re-encodes the header it parsed (so BODY[] of a message with LF line
// endings differed from the stored bytes and from RFC822.SIZE, breaking
// signatures), and returns nothing at all when the header does not parse.

// headerLen is the length of a message's header section: everything up to
// and including the first empty line, or the whole message if it has none.
func headerLen(raw []byte) int {
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			break
		}
		line := raw[i : i+j]
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return i + j + 1
		}
		i += j + 1
	}
	return len(raw)
}

// wholeSection serves BODY[], BODY[HEADER] and BODY[TEXT] of the message
// itself from the stored bytes; ok is false for any other section.
func wholeSection(raw []byte, bs *imap.FetchItemBodySection) (b []byte, ok bool) {
	if len(bs.Part) > 0 || len(bs.HeaderFields) > 0 || len(bs.HeaderFieldsNot) > 0 {
		return nil, false
	}
	switch bs.Specifier {
	case imap.PartSpecifierNone:
		b = raw
	case imap.PartSpecifierHeader:
		b = raw[:headerLen(raw)]
	case imap.PartSpecifierText:
		b = raw[headerLen(raw):]
	default:
		return nil, false
	}
	return partial(b, bs.Partial), true
}

// partial applies a <offset.size> range.
func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset >= int64(len(b)) {
		return nil
	}
	end := p.Offset + p.Size
	if end > int64(len(b)) || end < p.Offset {
		end = int64(len(b))
	}
	return b[p.Offset:end]
}

// parseable returns raw if its header parses, and otherwise a copy whose
// header keeps only well-formed fields, so that ENVELOPE, BODYSTRUCTURE,
// header fields and parts of a message with one broken header line (a line
// without a colon, say) are still served rather than dropped entirely.
// The stored bytes are never changed.
func parseable(raw []byte) []byte {
	n := headerLen(raw)
	if headerParses(raw[:n]) {
		return raw
	}
	var hdr bytes.Buffer
	kept := false // whether the previous field was kept, for continuations
	for i := 0; i < n; {
		j := bytes.IndexByte(raw[i:n], '\n')
		end := n
		if j >= 0 {
			end = i + j + 1
		}
		line := raw[i:end]
		i = end
		trimmed := bytes.TrimRight(line, "\r\n")
		switch {
		case len(trimmed) == 0:
			// The empty line ending the header: written below.
		case trimmed[0] == ' ' || trimmed[0] == '\t':
			if kept {
				hdr.Write(trimmed)
				hdr.WriteString("\r\n")
			}
		case validFieldLine(trimmed):
			hdr.Write(trimmed)
			hdr.WriteString("\r\n")
			kept = true
		default:
			kept = false
		}
	}
	if !headerParses(append(hdr.Bytes(), "\r\n"...)) {
		hdr.Reset()
	}
	hdr.WriteString("\r\n")
	hdr.Write(raw[n:])
	return hdr.Bytes()
}

func headerParses(h []byte) bool {
	_, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(h)))
	return err == nil
}

// validFieldLine reports whether line starts with a field name (printable
// ASCII other than colon) followed by a colon.
func validFieldLine(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	for _, c := range line[:i] {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// headerFieldsSection serves BODY[HEADER.FIELDS (...)] of the message
// itself from the stored bytes when its header is plainly formed: every
// line ends in CRLF, every field has a name of printable characters before
// its colon, continuation lines start with white space, and an empty line
// ends it. That is how a mail client lists a mailbox, and
// imapserver.ExtractBodySection parsed the whole header into a map and
// wrote it out again for each message (half the time of such a FETCH).
// For such a header it answers what ExtractBodySection answers, the kept
// fields' lines in order and an empty line (FuzzHeaderFieldsSection
// compares the two); ok is false for anything else, which then takes the
// general path.
func headerFieldsSection(raw []byte, bs *imap.FetchItemBodySection) (b []byte, ok bool) {
	if len(bs.Part) > 0 || len(bs.HeaderFields) == 0 || len(bs.HeaderFieldsNot) > 0 ||
		bs.Specifier != imap.PartSpecifierHeader {
		return nil, false
	}
	h := raw[:headerLen(raw)]
	if len(h) < 4 || !bytes.HasSuffix(h, []byte("\r\n\r\n")) || h[0] == ' ' || h[0] == '\t' {
		return nil, false
	}
	h = h[:len(h)-2] // the fields, without the empty line
	keep := make(map[string]bool, len(bs.HeaderFields))
	for _, k := range bs.HeaderFields {
		keep[strings.ToLower(k)] = true
	}
	out := make([]byte, 0, 512)
	for len(h) > 0 {
		// One field: its first line and any continuation lines.
		end := 0
		for {
			j := bytes.IndexByte(h[end:], '\n')
			if j < 1 || h[end+j-1] != '\r' {
				return nil, false // a bare LF (or none): not plain
			}
			end += j + 1
			if end == len(h) || (h[end] != ' ' && h[end] != '\t') {
				break
			}
		}
		field := h[:end]
		h = h[end:]
		colon := bytes.IndexByte(field, ':')
		if colon < 0 {
			return nil, false
		}
		name := bytes.Trim(field[:colon], " \t")
		if len(name) == 0 || bytes.ContainsAny(field[:colon], "\r\n") {
			return nil, false
		}
		for _, c := range name {
			if c < 33 || c > 126 {
				return nil, false
			}
		}
		if keep[strings.ToLower(string(name))] {
			out = append(out, field...)
		}
	}
	out = append(out, '\r', '\n')
	return partial(out, bs.Partial), true
}
