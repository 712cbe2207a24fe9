package imapsrv

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
)

// sortKeys is what SORT (RFC 5256, RFC 5957) and THREAD (RFC 5256) need of
// a message beyond its record (size, internal date): computed at delivery
// with the envelope and stored ahead of the summary (see Summarize), so
// that sorting or threading a large mailbox reads no message. Strings are
// folded (caseFold) where the RFCs compare them case-insensitively.
type sortKeys struct {
	Subject     string // base subject (RFC 5256 2.1), folded
	IsReply     bool   // the subject had a reply or forward marker (2.1, 5)
	From        string // addr-mailbox of the first From address, folded
	To          string
	Cc          string
	DisplayFrom string // RFC 5957 section 3, folded
	DisplayTo   string
	Date        int64 // sent date in UTC seconds; 0 when there is none
	MessageID   string
	References  []string // References, else In-Reply-To, message ids (RFC 5256 4)
}

// sortKeysMagic starts a summary that carries sort keys. A gob stream
// never starts with a zero byte (its first message length is positive), so
// summaries stored before sort keys existed are told apart by it. The
// digit is the keys' version: version 1 ("\x00S1") folded to lower case
// and skipped group markers and domainless mailboxes (see caseFold,
// sortAddress), so its keys are read past and computed again.
const (
	sortKeysMagic   = "\x00S2"
	sortKeysMagicV1 = "\x00S1"
)

// Bounds on what a stored record may claim, so a damaged one cannot make
// decoding allocate without limit.
const (
	maxSortKeyString = 1 << 16
	maxReferences    = 1 << 12
)

// computeSortKeys derives a message's sort keys from its header.
func computeSortKeys(raw []byte) *sortKeys {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(parseable(raw))))
	if err != nil {
		return &sortKeys{}
	}
	return sortKeysFromHeader(h)
}

func sortKeysFromHeader(h textproto.Header) *sortKeys {
	k := &sortKeys{}
	k.Subject, k.IsReply = baseSubject(decodeHeaderValue(h.Get("Subject")))
	k.Subject = caseFold(k.Subject)
	from, displayFrom := sortAddress(h.Get("From"))
	to, displayTo := sortAddress(h.Get("To"))
	cc, _ := sortAddress(h.Get("Cc"))
	k.From, k.To, k.Cc = caseFold(from), caseFold(to), caseFold(cc)
	k.DisplayFrom, k.DisplayTo = caseFold(displayFrom), caseFold(displayTo)
	if date := extractEnvelope(h).Date; !date.IsZero() {
		k.Date = date.UTC().Unix()
	}
	if ids := messageIDs(h.Get("Message-Id")); len(ids) > 0 {
		k.MessageID = ids[0]
	}
	// RFC 5256 section 4, step 1A: References, or else the first message
	// id of In-Reply-To.
	k.References = messageIDs(h.Get("References"))
	if len(k.References) == 0 {
		if ids := messageIDs(h.Get("In-Reply-To")); len(ids) > 0 {
			k.References = ids[:1]
		}
	}
	if len(k.References) > maxReferences {
		k.References = k.References[len(k.References)-maxReferences:]
	}
	return k
}

// sortAddress gives the SORT keys of an address-list header value: the
// addr-mailbox of its first address (FROM, TO, CC; RFC 5256 section 3) and
// its display key (DISPLAYFROM, DISPLAYTO; RFC 5957 section 3: the display
// name, else the addr-spec). Two cases follow what Dovecot answers to its
// imaptest sort-addresses and sort-display-* scripts:
//   - a list that starts with a group starts, in ENVELOPE, with the group's
//     marker, whose addr-mailbox is the group's name (RFC 3501 7.4.2), so
//     both keys are the group's name;
//   - a mailbox without a domain ("From: d"), which the envelope leaves
//     out, still has its local part as both keys, not the empty string a
//     missing field sorts as.
func sortAddress(value string) (mailbox, display string) {
	for _, it := range splitAddressList(value) {
		switch it.kind {
		case itemGroupStart:
			// A group without a name has no marker; its members count.
			if name := decodePhrase(it.text); name != "" {
				return name, name
			}
		case itemMailbox:
			if a, ok := parseMailbox(it.text); ok {
				if n := strings.TrimSpace(a.Name); n != "" {
					return a.Mailbox, n
				}
				return a.Mailbox, a.Mailbox + "@" + a.Host
			}
			if bare := strings.TrimSpace(stripComments(it.text)); bare != "" && !strings.ContainsAny(bare, "@<>\" \t") {
				return bare, bare
			}
		}
	}
	return "", ""
}

// caseFold is the key of the comparator SORT uses: i;ascii-casemap (RFC
// 5256 section 3, RFC 4790 section 9.2) maps a-z to A-Z, so "[" and "_"
// sort after letters; beyond ASCII each rune is folded to its upper case
// too (titlecase, then uppercase), so that case never orders.
func caseFold(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('a' <= c && c <= 'z') {
			return strings.Map(func(r rune) rune { return unicode.ToUpper(unicode.ToTitle(r)) }, s)
		}
	}
	return s
}

// messageIDs extracts the "<...>" message ids of a header value, in
// order, without their brackets and with white space removed (RFC 5256
// section 4 compares ids as strings).
func messageIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(v[i+1:], '>')
		if j < 0 {
			return out
		}
		id := strings.Join(strings.Fields(v[i+1:i+1+j]), "")
		if id != "" && len(id) <= 998 {
			out = append(out, id)
		}
		v = v[i+1+j+1:]
	}
}

// baseSubject extracts the base subject (RFC 5256 section 2.1) of a
// decoded subject, and whether it was a reply or forward (section 5,
// step 5 of REFERENCES: trailer "(fwd)", a "re:"/"fw:"/"fwd:" leader, or a
// "[fwd: ...]" wrapper was removed).
func baseSubject(s string) (string, bool) {
	// Step 1: white space runs become one space.
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }), " ")
	reply := false
	for range 64 { // each round removes text, so this ends; 64 bounds odd input
		// Step 2: trailers "(fwd)" and white space.
		for {
			t := strings.TrimRight(s, " ")
			if len(t) >= 5 && strings.EqualFold(t[len(t)-5:], "(fwd)") {
				t = t[:len(t)-5]
				reply = true
			}
			if t == s {
				break
			}
			s = t
		}
		// Steps 3-5: leaders and blobs.
		for {
			t, r := stripLeader(s)
			if r {
				reply = true
			}
			t = stripBlob(t)
			if t == s {
				break
			}
			s = t
		}
		// Step 6: "[fwd: ...]".
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s = s[5 : len(s)-1]
			reply = true
			continue
		}
		break
	}
	return s, reply
}

// stripLeader removes one subj-leader: leading white space, or *subj-blob
// subj-refwd (RFC 5256 section 5).
func stripLeader(s string) (string, bool) {
	if strings.HasPrefix(s, " ") {
		return strings.TrimLeft(s, " "), false
	}
	rest := s
	for {
		b, ok := cutBlob(rest)
		if !ok {
			break
		}
		rest = b
	}
	l := strings.ToLower(rest)
	var n int
	switch {
	case strings.HasPrefix(l, "re"):
		n = 2
	case strings.HasPrefix(l, "fwd"):
		n = 3
	case strings.HasPrefix(l, "fw"):
		n = 2
	default:
		return s, false
	}
	rest = strings.TrimLeft(rest[n:], " ")
	if b, ok := cutBlob(rest); ok {
		rest = b
	}
	if !strings.HasPrefix(rest, ":") {
		return s, false
	}
	return rest[1:], true
}

// stripBlob removes a leading subj-blob unless that leaves no base
// subject (step 4).
func stripBlob(s string) string {
	b, ok := cutBlob(s)
	if !ok || strings.TrimSpace(b) == "" {
		return s
	}
	return b
}

// cutBlob removes one subj-blob: "[" *BLOBCHAR "]" *WSP, BLOBCHAR being
// any character but "[" and "]".
func cutBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[end+2:], " "), true
}

// encodeSortKeys appends k's stored form to b.
func encodeSortKeys(b []byte, k *sortKeys) []byte {
	str := func(s string) {
		if len(s) > maxSortKeyString {
			s = s[:maxSortKeyString]
		}
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, s := range []string{k.Subject, k.From, k.To, k.Cc, k.DisplayFrom, k.DisplayTo, k.MessageID} {
		str(s)
	}
	var flags uint64
	if k.IsReply {
		flags = 1
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendVarint(b, k.Date)
	b = binary.AppendUvarint(b, uint64(len(k.References)))
	for _, r := range k.References {
		str(r)
	}
	return b
}

var errBadSortKeys = errors.New("malformed sort keys")

// decodeSortKeys reads what encodeSortKeys wrote, returning the rest of b.
func decodeSortKeys(b []byte) (*sortKeys, []byte, error) {
	str := func() (string, error) {
		n, l := binary.Uvarint(b)
		if l <= 0 || n > maxSortKeyString || n > uint64(len(b)-l) {
			return "", errBadSortKeys
		}
		s := string(b[l : l+int(n)])
		b = b[l+int(n):]
		return s, nil
	}
	k := &sortKeys{}
	for _, p := range []*string{&k.Subject, &k.From, &k.To, &k.Cc, &k.DisplayFrom, &k.DisplayTo, &k.MessageID} {
		s, err := str()
		if err != nil {
			return nil, nil, err
		}
		*p = s
	}
	flags, l := binary.Uvarint(b)
	if l <= 0 {
		return nil, nil, errBadSortKeys
	}
	b = b[l:]
	k.IsReply = flags&1 != 0
	if k.Date, l = binary.Varint(b); l <= 0 {
		return nil, nil, errBadSortKeys
	}
	b = b[l:]
	n, l := binary.Uvarint(b)
	if l <= 0 || n > maxReferences || n > uint64(len(b)-l) {
		return nil, nil, errBadSortKeys
	}
	b = b[l:]
	for range n {
		s, err := str()
		if err != nil {
			return nil, nil, err
		}
		k.References = append(k.References, s)
	}
	return k, b, nil
}

// splitSummary separates a stored summary's sort keys from its
// gob-encoded rest. The keys are nil for a summary stored before they
// existed or with an older version of them: the caller computes them
// again from the header (loadSortKeys).
func splitSummary(b []byte) (*sortKeys, []byte, error) {
	current := bytes.HasPrefix(b, []byte(sortKeysMagic))
	if !current && !bytes.HasPrefix(b, []byte(sortKeysMagicV1)) {
		return nil, b, nil
	}
	// Both versions have the same layout and magic length.
	k, rest, err := decodeSortKeys(b[len(sortKeysMagic):])
	if err != nil {
		return nil, nil, err
	}
	if !current {
		return nil, rest, nil
	}
	return k, rest, nil
}

// sentDate is the DATE sort key (RFC 5256 section 3): the sent date, or
// the internal date when the message has none.
func (k *sortKeys) sentDate(internal time.Time) int64 {
	if k.Date != 0 {
		return k.Date
	}
	return internal.UTC().Unix()
}
