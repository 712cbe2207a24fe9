package imapserver

// certmail patch: APPEND of several messages (MULTIAPPEND, RFC 3502) and
// of messages made of parts (CATENATE, RFC 4469), with literal8 messages
// (BINARY, RFC 3516 section 4.4).

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionAppendMulti is a Session that takes the whole APPEND command at
// once: one or more messages (RFC 3502), each given as a literal or, with
// CATENATE (RFC 4469), as a list of parts. When a session implements it,
// every APPEND goes through AppendMulti and Session.Append is not called.
//
// The command is read to its end before AppendMulti is called: the
// messages are held in memory, all of them together within the session's
// append limit (SessionAppendLimit), so that the session can store them
// all or none (RFC 3502 section 6.3.11).
type SessionAppendMulti interface {
	Session
	// AppendMulti appends msgs to mailbox, in order, all or none. The
	// AppendData it returns names every UID in UIDs when there are
	// several messages.
	AppendMulti(mailbox string, msgs []AppendMessage) (*imap.AppendData, error)
}

// SessionAppendCheck is a SessionAppendMulti that can refuse an APPEND
// from its mailbox name alone, before the client sends any message data
// (RFC 3502 section 6.3.11's example: NO [TRYCREATE] instead of the
// continuation request). AppendMulti is still called, and checks again,
// if AppendCheck returns nil.
type SessionAppendCheck interface {
	AppendCheck(mailbox string) error
}

// AppendMessage is one message of an APPEND command.
type AppendMessage struct {
	Options imap.AppendOptions
	// Literal is the message, unless Catenate is set. Options.Binary
	// says whether it came as a literal8 (RFC 3516).
	Literal []byte
	// Catenate, when not nil, is the message's CATENATE parts (RFC 4469
	// section 5), at least one, to be joined in order.
	Catenate []CatenatePart
}

// CatenatePart is a part of a CATENATE message: a URL or a TEXT literal.
type CatenatePart struct {
	// URL, if not empty, names the part's data: an IMAP URL (RFC 5092),
	// absolute or relative, as the client sent it.
	URL string
	// Text is the data of a TEXT part; Binary says it came as a literal8.
	Text   []byte
	Binary bool
}

const (
	// maxAppendMessages bounds the messages of one APPEND and
	// maxCatenateParts the parts of one CATENATE message: each costs
	// memory and a transaction's work before anything is answered.
	maxAppendMessages = 1000
	maxCatenateParts  = 1000
)

func (c *Conn) handleAppendMulti(tag string, dec *imapwire.Decoder, session SessionAppendMulti) error {
	var mailbox string
	if !dec.ExpectSP() || !dec.ExpectMailbox(&mailbox) {
		return dec.Err()
	}
	r := appendReader{c: c, dec: dec, limit: defaultAppendLimit}
	if s, ok := c.session.(SessionAppendLimit); ok {
		r.limit = int64(s.AppendLimit())
	}
	// A command refused before its data (not logged in, or a session's
	// AppendCheck: RFC 3502's example answers NO [TRYCREATE] to the
	// first literal) is answered at its first synchronizing literal,
	// which the client then does not send; non-synchronizing literals
	// on the way are read and dropped, not read as commands.
	r.refuse = c.checkState(imap.ConnStateAuthenticated)
	if check, ok := c.session.(SessionAppendCheck); ok && r.refuse == nil {
		r.refuse = check.AppendCheck(mailbox)
	}
	var msgs []AppendMessage
	for dec.SP() {
		if len(msgs) == maxAppendMessages {
			return &imap.Error{
				Type: imap.StatusResponseTypeNo,
				Code: imap.ResponseCodeLimit,
				Text: fmt.Sprintf("At most %d messages in one APPEND", maxAppendMessages),
			}
		}
		msg, err := r.message()
		if err != nil {
			return err
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) == 0 {
		if !dec.ExpectSP() { // the error names what is missing
			return dec.Err()
		}
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if r.refuse != nil {
		return r.refuse
	}
	data, err := session.AppendMulti(mailbox, msgs)
	if err != nil {
		return err
	}
	if err := c.poll("APPEND"); err != nil {
		return err
	}
	return c.writeAppendOK(tag, data)
}

// appendReader reads the messages of an APPEND command.
type appendReader struct {
	c      *Conn
	dec    *imapwire.Decoder
	limit  int64 // on the literal bytes of the whole command
	total  int64 // literal bytes so far
	refuse error // the command's answer, known before its data
}

// message reads append-opts SP append-data (RFC 4466 section 2.1 with
// RFC 3516's literal8, RFC 4469's CATENATE and RFC 6855's UTF8).
func (r *appendReader) message() (AppendMessage, error) {
	dec := r.dec
	var msg AppendMessage
	hasFlagList, err := dec.List(func() error {
		flag, err := internal.ExpectFlag(dec)
		if err != nil {
			return err
		}
		msg.Options.Flags = append(msg.Options.Flags, flag)
		return nil
	})
	if err != nil {
		return msg, err
	}
	if hasFlagList && !dec.ExpectSP() {
		return msg, dec.Err()
	}
	t, err := internal.DecodeDateTime(dec)
	if err != nil {
		return msg, err
	}
	if !t.IsZero() && !dec.ExpectSP() {
		return msg, dec.Err()
	}
	msg.Options.Time = t

	var ext string
	switch {
	case dec.Special('~'):
		msg.Options.Binary = true
		msg.Literal, err = r.literal()
	case dec.Atom(&ext):
		switch strings.ToUpper(ext) {
		case "UTF8": // RFC 6855 section 4: "UTF8" SP "(" literal8 ")"
			if !dec.ExpectSP() || !dec.ExpectSpecial('(') || !dec.ExpectSpecial('~') {
				return msg, dec.Err()
			}
			msg.Options.Binary = true
			if msg.Literal, err = r.literal(); err != nil {
				return msg, err
			}
			if !dec.ExpectSpecial(')') {
				return msg, dec.Err()
			}
		case "CATENATE":
			if !dec.ExpectSP() {
				return msg, dec.Err()
			}
			msg.Catenate, err = r.catenate()
		default:
			return msg, newClientBugError("Unknown APPEND data extension")
		}
	default:
		msg.Literal, err = r.literal()
	}
	return msg, err
}

// catenate reads "(" cat-part *(SP cat-part) ")" (RFC 4469 section 5).
func (r *appendReader) catenate() ([]CatenatePart, error) {
	dec := r.dec
	parts := []CatenatePart{}
	isList, err := dec.List(func() error {
		if len(parts) == maxCatenateParts {
			return &imap.Error{
				Type: imap.StatusResponseTypeNo,
				Code: imap.ResponseCodeLimit,
				Text: fmt.Sprintf("At most %d parts in one CATENATE", maxCatenateParts),
			}
		}
		var name string
		if !dec.ExpectAtom(&name) || !dec.ExpectSP() {
			return dec.Err()
		}
		var part CatenatePart
		switch strings.ToUpper(name) {
		case "URL":
			if !dec.ExpectAString(&part.URL) {
				return dec.Err()
			}
			if part.URL == "" {
				return &imapwire.DecoderExpectError{Message: "empty CATENATE URL"}
			}
		case "TEXT":
			part.Binary = dec.Special('~')
			var err error
			if part.Text, err = r.literal(); err != nil {
				return err
			}
		default:
			return &imapwire.DecoderExpectError{Message: fmt.Sprintf("unknown CATENATE part %q", name)}
		}
		parts = append(parts, part)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !isList {
		return nil, &imapwire.DecoderExpectError{Message: "expected CATENATE part list"}
	}
	if len(parts) == 0 {
		return nil, &imapwire.DecoderExpectError{Message: "empty CATENATE part list"}
	}
	return parts, nil
}

// literal reads a literal of the command, within the command's limit.
func (r *appendReader) literal() ([]byte, error) {
	lit, nonSync, err := r.dec.ExpectLiteralReader()
	if err != nil {
		return nil, err
	}
	if r.total+lit.Size() > r.limit {
		if nonSync {
			// The client is already sending the data; left in the
			// stream it would be read as commands.
			return nil, r.c.refuseNonSyncLiteral(lit.Size(), r.limit-r.total)
		}
		return nil, &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeTooBig,
			Text: fmt.Sprintf("APPEND is limited to %v bytes of message data", r.limit),
		}
	}
	r.total += lit.Size()
	if r.refuse != nil {
		if !nonSync {
			return nil, r.refuse
		}
		r.c.setReadTimeout(literalReadTimeout)
		defer r.c.setReadTimeout(cmdReadTimeout)
		_, err := io.Copy(io.Discard, lit)
		return nil, err
	}
	if err := r.c.acceptLiteral(lit.Size(), nonSync); err != nil {
		return nil, err
	}
	r.c.setReadTimeout(literalReadTimeout)
	defer r.c.setReadTimeout(cmdReadTimeout)
	// Read to EOF, which closes the literal for the decoder.
	buf := bytes.NewBuffer(make([]byte, 0, lit.Size()))
	if _, err := io.Copy(buf, lit); err != nil {
		return nil, fmt.Errorf("reading APPEND literal: %w", err)
	}
	if int64(buf.Len()) != lit.Size() {
		return nil, fmt.Errorf("reading APPEND literal: %w", io.ErrUnexpectedEOF)
	}
	return buf.Bytes(), nil
}
