package imapserver

import (
	"fmt"

	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionID is an IMAP session which supports ID (RFC 2971). (certmail
// patch)
type SessionID interface {
	Session

	// ID receives the client's identification (nil for "ID NIL") and
	// returns the server's (nil: "* ID NIL"). Valid in every state
	// (RFC 2971 section 3.1).
	ID(client *imap.IDData) (*imap.IDData, error)
}

// RFC 2971 section 3.3: a field is at most 30 octets, a value at most
// 1024, and there are at most 30 pairs.
const (
	maxIDPairs    = 30
	maxIDFieldLen = 30
	maxIDValueLen = 1024
)

func (c *Conn) handleID(dec *imapwire.Decoder) error {
	client, err := readIDParams(dec)
	if err != nil {
		return err
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	session, ok := c.session.(SessionID)
	if !ok {
		return newClientBugError("ID is not supported")
	}
	server, err := session.ID(client)
	if err != nil {
		return err
	}

	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ID").SP()
	writeIDParams(enc.Encoder, server)
	return enc.CRLF()
}

// readIDParams reads SP id_params_list (RFC 2971 section 4):
//
//	id_params_list ::= "(" #(string SPACE nstring) ")" / nil
//
// Field names are case-insensitive; a NIL value reads as "".
func readIDParams(dec *imapwire.Decoder) (*imap.IDData, error) {
	if !dec.ExpectSP() {
		return nil, dec.Err()
	}
	var s string
	if dec.Atom(&s) {
		if !dec.Expect(strings.EqualFold(s, "NIL"), "NIL or (") {
			return nil, dec.Err()
		}
		return nil, nil
	}
	var data imap.IDData
	n := 0
	err := dec.ExpectList(func() error {
		var field, value string
		if !dec.ExpectString(&field) || !dec.ExpectSP() || !dec.ExpectNString(&value) {
			return dec.Err()
		}
		n++
		switch {
		case n > maxIDPairs:
			return &imapwire.DecoderExpectError{Message: fmt.Sprintf("ID has more than %d field-value pairs", maxIDPairs)}
		case len(field) > maxIDFieldLen:
			return &imapwire.DecoderExpectError{Message: fmt.Sprintf("ID field longer than %d octets", maxIDFieldLen)}
		case len(value) > maxIDValueLen:
			return &imapwire.DecoderExpectError{Message: fmt.Sprintf("ID value longer than %d octets", maxIDValueLen)}
		}
		data.Set(field, value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &data, nil
}

func writeIDParams(enc *imapwire.Encoder, data *imap.IDData) {
	pairs := data.Pairs()
	if len(pairs) == 0 {
		enc.NIL()
		return
	}
	enc.List(len(pairs), func(i int) {
		enc.String(pairs[i][0]).SP().String(pairs[i][1])
	})
}
