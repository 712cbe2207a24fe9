package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// handleCreate reports whether the caller is to send the tagged OK:
// sessions that name the mailbox's RFC 8474 MAILBOXID send their own
// (certmail patch).
func (c *Conn) handleCreate(tag string, dec *imapwire.Decoder) (sendOK bool, err error) {
	sendOK = true
	err = c.handleCreateWith(tag, dec, &sendOK)
	return sendOK, err
}

func (c *Conn) handleCreateWith(tag string, dec *imapwire.Decoder, sendOK *bool) error {
	var (
		name    string
		options imap.CreateOptions
	)
	if !dec.ExpectSP() {
		return dec.Err()
	}
	if !dec.ExpectMailbox(&name) {
		return cannotCreate(dec.Err()) // certmail patch
	}
	if dec.SP() {
		var name string
		if !dec.ExpectSpecial('(') || !dec.ExpectAtom(&name) || !dec.ExpectSP() {
			return dec.Err()
		}
		switch strings.ToUpper(name) {
		case "USE":
			var err error
			options.SpecialUse, err = internal.ExpectMailboxAttrList(dec)
			if err != nil {
				return err
			}
		default:
			return newClientBugError("unknown CREATE parameter")
		}
		if !dec.ExpectSpecial(')') {
			return dec.Err()
		}
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	// certmail patch: RFC 8474 4.1, OK [MAILBOXID (id)].
	if s, ok := c.session.(SessionCreateMailboxID); ok {
		id, err := s.CreateMailboxID(name, &options)
		if err != nil || id == "" {
			return err
		}
		*sendOK = false
		if err := c.poll("CREATE"); err != nil {
			return err
		}
		enc := newResponseEncoder(c)
		defer enc.end()
		enc.Atom(tag).SP().Atom("OK").SP()
		enc.Special('[').Atom("MAILBOXID").SP().Special('(').Atom(id).Special(')').Special(']')
		enc.SP().Text("CREATE completed")
		return enc.CRLF()
	}
	return c.session.Create(name, &options)
}

// SessionCreateMailboxID is a Session whose CREATE names the new
// mailbox's MAILBOXID (certmail patch, RFC 8474 4.1): an empty id sends
// the plain OK.
type SessionCreateMailboxID interface {
	CreateMailboxID(mailbox string, options *imap.CreateOptions) (mailboxID string, err error)
}
