package imapsrv

import (
	"mime"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// addressFields are the ENVELOPE's address fields (RFC 3501 7.4.2), which
// SEARCH FROM, TO, CC and BCC match against as parsed addresses too.
var addressFields = []string{"From", "Sender", "Reply-To", "To", "Cc", "Bcc"}

// isAddressField reports whether a header field holds an address list
// that ENVELOPE shows.
func isAddressField(key string) bool {
	for _, f := range addressFields {
		if strings.EqualFold(f, key) {
			return true
		}
	}
	return false
}

// extractEnvelope is imapserver.ExtractEnvelope with the address lists
// parsed by parseAddressList: go-message (net/mail underneath) flattens
// RFC 5322 groups, and a route address or an empty group made the whole
// field NIL.
func extractEnvelope(h textproto.Header) *imap.Envelope {
	env := imapserver.ExtractEnvelope(h)
	env.From = parseAddressList(h.Get("From"))
	env.Sender = parseAddressList(h.Get("Sender"))
	env.ReplyTo = parseAddressList(h.Get("Reply-To"))
	env.To = parseAddressList(h.Get("To"))
	env.Cc = parseAddressList(h.Get("Cc"))
	env.Bcc = parseAddressList(h.Get("Bcc"))
	return env
}

// parseAddressList parses an address-list header value (RFC 5322 3.4,
// with 4.4's obsolete forms) into ENVELOPE addresses (RFC 3501 7.4.2): a
// group becomes a start marker (NIL NIL "name" NIL), its members and an
// end marker (NIL NIL NIL NIL); a route address keeps its route
// ("@relay") in the second field; a comment is the name when there is no
// display name, as net/mail does. The list is split here, at the commas,
// colons and semicolons outside quotes, comments and angle brackets, and
// each mailbox is parsed by go-message (RFC 2047 names decoded). A mailbox
// that does not parse is left out, the rest of the list kept.
func parseAddressList(value string) []imap.Address {
	var out []imap.Address
	inGroup := false
	for _, it := range splitAddressList(value) {
		switch it.kind {
		case itemGroupStart:
			if inGroup {
				out = append(out, imap.Address{}) // an unterminated group
				inGroup = false
			}
			// A group without a name has no marker to show (its start
			// would read as an end); its members are listed alone.
			if name := decodePhrase(it.text); name != "" {
				out = append(out, imap.Address{Mailbox: name})
				inGroup = true
			}
		case itemGroupEnd:
			if inGroup {
				out = append(out, imap.Address{})
				inGroup = false
			}
		case itemMailbox:
			if a, ok := parseMailbox(it.text); ok {
				out = append(out, a)
			}
		}
	}
	if inGroup {
		out = append(out, imap.Address{})
	}
	return out
}

type itemKind int

const (
	itemMailbox itemKind = iota
	itemGroupStart
	itemGroupEnd
)

type addrItem struct {
	kind itemKind
	text string
}

// splitAddressList splits an address list at the top level: mailboxes
// at commas, a group's display name at its colon, a group's end at its
// semicolon.
func splitAddressList(v string) []addrItem {
	var items []addrItem
	var cur strings.Builder
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			items = append(items, addrItem{itemMailbox, t})
		}
		cur.Reset()
	}
	depth := 0 // comment nesting
	inQuote, inAngle := false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inQuote:
			cur.WriteByte(c)
			if c == '\\' && i+1 < len(v) {
				i++
				cur.WriteByte(v[i])
			} else if c == '"' {
				inQuote = false
			}
			continue
		case depth > 0:
			cur.WriteByte(c)
			if c == '\\' && i+1 < len(v) {
				i++
				cur.WriteByte(v[i])
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
			continue
		}
		switch c {
		case '"':
			inQuote = true
		case '(':
			depth++
		case '<':
			inAngle = true
		case '>':
			inAngle = false
		case ',':
			if !inAngle {
				flush()
				continue
			}
		case ':':
			// A colon outside angle brackets ends a group's display
			// name; inside them it ends a route (<@a,@b:user@host>).
			if !inAngle {
				items = append(items, addrItem{itemGroupStart, strings.TrimSpace(cur.String())})
				cur.Reset()
				continue
			}
		case ';':
			if !inAngle {
				flush()
				items = append(items, addrItem{kind: itemGroupEnd})
				continue
			}
		}
		cur.WriteByte(c)
	}
	flush()
	return items
}

// parseMailbox parses one mailbox (RFC 5322 3.4 mailbox, or 4.4's
// obs-route form "<@route:user@host>").
func parseMailbox(s string) (imap.Address, bool) {
	var route string
	if lt := strings.IndexByte(s, '<'); lt >= 0 {
		if gt := strings.IndexByte(s[lt:], '>'); gt > 0 {
			inner := s[lt+1 : lt+gt]
			if strings.HasPrefix(strings.TrimSpace(inner), "@") {
				if colon := strings.IndexByte(inner, ':'); colon > 0 {
					route = strings.Join(strings.Fields(inner[:colon]), "")
					s = s[:lt+1] + inner[colon+1:] + s[lt+gt:]
				}
			}
		}
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		// net/mail takes comments around a mailbox but not inside its
		// addr-spec (RFC 5322 3.4.1 allows CFWS there:
		// "<user (c)@ (c) host>"); try again without them.
		a, err = mail.ParseAddress(stripComments(s))
		if err != nil {
			return imap.Address{}, false
		}
	}
	mbox, host, ok := strings.Cut(a.Address, "@")
	if !ok || mbox == "" || host == "" {
		// Without a host it would read as a group marker.
		return imap.Address{}, false
	}
	return imap.Address{Name: a.Name, Route: route, Mailbox: mbox, Host: host}, true
}

// stripComments removes the comments (outside quoted strings) from s,
// and the spaces inside angle brackets.
func stripComments(s string) string {
	var b strings.Builder
	depth := 0
	inQuote, inAngle := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote:
			b.WriteByte(c)
			if c == '\\' && i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			} else if c == '"' {
				inQuote = false
			}
		case depth > 0:
			if c == '\\' && i+1 < len(s) {
				i++
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
		case c == '(':
			depth++
		case c == '"':
			inQuote = true
			b.WriteByte(c)
		case inAngle && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
		default:
			if c == '<' {
				inAngle = true
			} else if c == '>' {
				inAngle = false
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

// decodePhrase is a group's display name: unquoted, RFC 2047 words
// decoded, comments dropped.
func decodePhrase(s string) string {
	var b strings.Builder
	depth := 0
	inQuote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case inQuote && c == '"':
			inQuote = false
		case inQuote:
			b.WriteByte(c)
		case depth > 0 && c == '\\' && i+1 < len(s):
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == '"':
			inQuote = true
		default:
			b.WriteByte(c)
		}
	}
	phrase := strings.Join(strings.Fields(b.String()), " ")
	dec := mime.WordDecoder{CharsetReader: gomessage.CharsetReader}
	if d, err := dec.DecodeHeader(phrase); err == nil {
		return d
	}
	return phrase
}

// addressStrings are the forms SEARCH FROM/TO/CC/BCC matches besides the
// raw field: each address as "name <route:mailbox@host>" and as
// mailbox@host, and each group's name, so that a search for
// user@domain.org finds "<user (x)@ (y) domain.org>" and a member of a
// group.
func addressStrings(value string) []string {
	var out []string
	for _, a := range parseAddressList(value) {
		switch {
		case a.IsGroupEnd():
		case a.IsGroupStart():
			out = append(out, a.Mailbox)
		default:
			addr := a.Mailbox + "@" + a.Host
			if a.Route != "" {
				addr = a.Route + ":" + addr
			}
			out = append(out, addr)
			if a.Name != "" {
				out = append(out, a.Name+" <"+addr+">")
			}
		}
	}
	return out
}
