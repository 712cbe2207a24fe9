package imapsrv

// CATENATE (RFC 4469): APPEND of a message made of TEXT literals and of
// parts of messages already stored, named by IMAP URLs (RFC 5092). Only
// the session's own mailboxes can be named, and a URL gives the bytes of
// the message its mailbox holds: for a certified stub, the stub's; the
// held message is in no mailbox, so no URL reaches it.

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/mailbox"
)

// catenate joins a CATENATE message's parts (RFC 4469 section 5) and
// reports whether it may hold NUL bytes (a literal8 TEXT part, or stored
// data).
func (sess *session) catenate(parts []imapserver.CatenatePart) ([]byte, bool, error) {
	var buf bytes.Buffer
	binary := false
	for _, p := range parts {
		data := p.Text
		if p.URL != "" {
			var err error
			if data, err = sess.urlData(p.URL); err != nil {
				return nil, false, err
			}
			binary = binary || bytes.IndexByte(data, 0) >= 0
		} else if p.Binary {
			binary = true
		} else if bytes.IndexByte(data, 0) >= 0 {
			return nil, false, errNUL
		}
		if buf.Len()+len(data) > int(sess.srv.opts.AppendLimit) {
			// RFC 4469 section 5: TOOBIG for a message over the limit,
			// however it was put together.
			return nil, false, sess.tooBig()
		}
		buf.Write(data)
	}
	return buf.Bytes(), binary, nil
}

// urlData is the data a CATENATE URL names: a message, or a section of
// it, in one of the session's mailboxes. Whatever is wrong with it is
// NO [BADURL url] (RFC 4469 section 6).
func (sess *session) urlData(raw string) ([]byte, error) {
	bad := func(why string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode("BADURL " + urlRespText(raw)),
			Text: "CATENATE URL " + why}
	}
	u, err := parseIMAPURL(raw)
	if err != nil {
		return nil, bad(responseText(err.Error()))
	}
	if u.user != "" && !strings.EqualFold(u.user, sess.acct) {
		return nil, bad("names another user's mailbox")
	}
	name := u.mailbox
	if name == "" {
		// A relative URL (";UID=n") is relative to the selected
		// mailbox.
		if sess.mboxName == "" {
			return nil, bad("is relative and no mailbox is selected")
		}
		name = sess.mboxName
	}
	var m *mailbox.Message
	err = sess.srv.store.View(func(tx *mailbox.Tx) error {
		mb, err := tx.Mailbox(sess.acct, name)
		if err != nil {
			return err
		}
		if u.uidValidity != 0 && u.uidValidity != mb.UIDValidity {
			return errUIDValidity
		}
		m, err = tx.Message(sess.acct, mb.ID, u.uid)
		return err
	})
	switch {
	case errors.Is(err, mailbox.ErrNoMailbox), errors.Is(err, mailbox.ErrBadName):
		return nil, bad("names no mailbox")
	case errors.Is(err, errUIDValidity):
		return nil, bad("has a UIDVALIDITY the mailbox does not have")
	case errors.Is(err, mailbox.ErrNoMessage):
		return nil, bad("names no message")
	case err != nil:
		return nil, fmt.Errorf("resolving CATENATE URL: %w", err)
	}
	msg, err := sess.srv.store.Raw(m.Blob)
	if errors.Is(err, mailbox.ErrNoMessage) {
		return nil, bad("names no message")
	} else if err != nil {
		return nil, fmt.Errorf("reading CATENATE URL's message: %w", err)
	}
	data := msg
	if u.section != nil {
		data = bodySection(msg, u.section)
	}
	if u.partial != nil {
		off := min(u.partial.Offset, int64(len(data)))
		end := int64(len(data))
		if u.partial.Size > 0 {
			end = min(off+u.partial.Size, end)
		}
		data = data[off:end]
	}
	return data, nil
}

var errUIDValidity = errors.New("UIDVALIDITY differs")

// urlRespText is the URL as BADURL may echo it: url-resp-text is TEXT-CHAR
// but "]" (RFC 4469 section 5, errata 2002), so other bytes are dropped.
func urlRespText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f || r == ']' {
			return -1
		}
		return r
	}, s)
	if len(s) > 300 {
		s = s[:300]
	}
	if s == "" {
		s = "-"
	}
	return s
}

// imapURL is an IMAP URL naming a message or a part of it (RFC 5092
// section 6: imessagepart).
type imapURL struct {
	user        string // from the authority; "" if none
	mailbox     string // "" for a URL relative to the selected mailbox
	uidValidity uint32 // 0 if none
	uid         uint32
	section     *imap.FetchItemBodySection // nil for the whole message
	partial     *imap.SectionPartial       // Size 0: to the end
}

// parseIMAPURL parses the URL forms a CATENATE URL part may take (RFC
// 4469 section 5, RFC 5092 section 7): absolute ("imap://user@host/
// INBOX;UIDVALIDITY=v/;UID=u/;SECTION=s/;PARTIAL=o.n"), network-path
// ("//host/..."), absolute-path ("/INBOX/;UID=u...") and relative to the
// selected mailbox (";UID=u..."). The parameter names are case-
// insensitive. URLAUTH URLs (RFC 4467) are not taken.
func parseIMAPURL(s string) (*imapURL, error) {
	u := &imapURL{}
	rest := s
	if len(rest) >= 7 && strings.EqualFold(rest[:7], "imap://") {
		rest = rest[5:]
	}
	if strings.HasPrefix(rest, "//") {
		authority, path, ok := strings.Cut(rest[2:], "/")
		if !ok {
			return nil, errors.New("has no mailbox")
		}
		if userinfo, _, ok := strings.Cut(authority, "@"); ok {
			user, _, _ := strings.Cut(userinfo, ";") // ;AUTH=...
			var err error
			if u.user, err = url.PathUnescape(user); err != nil {
				return nil, fmt.Errorf("has a bad user name: %w", err)
			}
		}
		rest = "/" + path
	}
	var msgPart string
	switch {
	case strings.HasPrefix(rest, "/"):
		// The mailbox ends where "/;UID=" starts; it may hold "/"
		// itself (RFC 5092: enc-mailbox takes bchar).
		i := indexFold(rest, "/;UID=")
		if i < 0 {
			return nil, errors.New("names no message (;UID=)")
		}
		if i == 0 {
			return nil, errors.New("has no mailbox name")
		}
		mref := rest[1:i]
		msgPart = rest[i+1:]
		if j := indexFold(mref, ";UIDVALIDITY="); j >= 0 {
			v, err := strconv.ParseUint(mref[j+len(";UIDVALIDITY="):], 10, 32)
			if err != nil || v == 0 {
				return nil, errors.New("has a bad UIDVALIDITY")
			}
			u.uidValidity = uint32(v)
			mref = mref[:j]
		}
		name, err := url.PathUnescape(mref)
		if err != nil || name == "" {
			return nil, errors.New("has a bad mailbox name")
		}
		if strings.EqualFold(name, "INBOX") {
			name = "INBOX"
		}
		u.mailbox = name
	case len(rest) >= 5 && strings.EqualFold(rest[:5], ";UID="):
		msgPart = rest
	default:
		return nil, errors.New("is not an IMAP URL naming a message")
	}
	for n, seg := range strings.Split(msgPart, "/") {
		key, val, ok := strings.Cut(seg, "=")
		if !ok || !strings.HasPrefix(key, ";") {
			return nil, fmt.Errorf("has a bad parameter %q", seg)
		}
		switch key = strings.ToUpper(key); {
		case n == 0 && key == ";UID":
			v, err := strconv.ParseUint(val, 10, 32)
			if err != nil || v == 0 {
				return nil, errors.New("has a bad UID")
			}
			u.uid = uint32(v)
		case n == 1 && key == ";SECTION":
			spec, err := url.PathUnescape(val)
			if err != nil {
				return nil, errors.New("has a bad section")
			}
			if u.section, err = parseSectionSpec(spec); err != nil {
				return nil, err
			}
		case (n == 1 || n == 2 && u.section != nil) && key == ";PARTIAL":
			off, length, hasLen := strings.Cut(val, ".")
			o, err := strconv.ParseUint(off, 10, 32)
			if err != nil {
				return nil, errors.New("has a bad partial range")
			}
			u.partial = &imap.SectionPartial{Offset: int64(o)}
			if hasLen {
				l, err := strconv.ParseUint(length, 10, 32)
				if err != nil || l == 0 {
					return nil, errors.New("has a bad partial range")
				}
				u.partial.Size = int64(l)
			}
		case key == ";EXPIRE" || key == ";URLAUTH":
			return nil, errors.New("is a URLAUTH URL, which this server does not take")
		default:
			return nil, fmt.Errorf("has an unexpected parameter %q", seg)
		}
	}
	return u, nil
}

// indexFold is strings.Index, ASCII case-insensitive.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// parseSectionSpec parses an IMAP section-spec without its brackets (RFC
// 9051 section 9: section-msgtext / section-part ["." section-text]), as
// RFC 5092's ";SECTION=" carries it: "1.2", "HEADER", "2.TEXT", "1.MIME",
// "HEADER.FIELDS (From Subject)".
func parseSectionSpec(s string) (*imap.FetchItemBodySection, error) {
	bs := &imap.FetchItemBodySection{Peek: true}
	if s == "" {
		return nil, errors.New("has an empty section")
	}
	rest := s
	for {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			break
		}
		n, err := strconv.ParseUint(rest[:i], 10, 32)
		if err != nil || n == 0 || len(bs.Part) > maxMIMEDepth {
			return nil, fmt.Errorf("has a bad section %q", s)
		}
		bs.Part = append(bs.Part, int(n))
		if rest = rest[i:]; rest == "" {
			break
		}
		if rest[0] != '.' || len(rest) == 1 {
			return nil, fmt.Errorf("has a bad section %q", s)
		}
		rest = rest[1:]
	}
	name, list, hasList := strings.Cut(rest, " ")
	switch strings.ToUpper(name) {
	case "": // a part number alone
	case "HEADER":
		bs.Specifier = imap.PartSpecifierHeader
	case "TEXT":
		bs.Specifier = imap.PartSpecifierText
	case "MIME":
		if len(bs.Part) == 0 {
			return nil, fmt.Errorf("has MIME without a part")
		}
		bs.Specifier = imap.PartSpecifierMIME
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		bs.Specifier = imap.PartSpecifierHeader
		if !hasList || !strings.HasPrefix(list, "(") || !strings.HasSuffix(list, ")") {
			return nil, fmt.Errorf("has a bad header list in section %q", s)
		}
		fields := strings.Fields(list[1 : len(list)-1])
		if len(fields) == 0 {
			return nil, fmt.Errorf("has an empty header list in section %q", s)
		}
		for _, f := range fields {
			f = strings.Trim(f, `"`)
			if f == "" || strings.ContainsAny(f, `"():\`) {
				return nil, fmt.Errorf("has a bad header field name in section %q", s)
			}
			if strings.ToUpper(name) == "HEADER.FIELDS" {
				bs.HeaderFields = append(bs.HeaderFields, f)
			} else {
				bs.HeaderFieldsNot = append(bs.HeaderFieldsNot, f)
			}
		}
		return bs, nil
	default:
		return nil, fmt.Errorf("has a bad section %q", s)
	}
	if hasList {
		return nil, fmt.Errorf("has a bad section %q", s)
	}
	return bs, nil
}
