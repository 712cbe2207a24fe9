package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"unicode/utf8"

	"certmail/certified"
)

// SubmitRequest is the JSON body of POST /v1/items.
type SubmitRequest struct {
	// Message is M as a JSON string: its UTF-8 bytes are stored as they
	// are. MessageBase64 is M in standard base64, for any bytes. Exactly
	// one of the two is given.
	Message       *string `json:"message,omitempty"`
	MessageBase64 *string `json:"message_base64,omitempty"`
	// Recipients are local accounts or their addresses; each gets an item
	// of its own, with a label of its own.
	Recipients []string `json:"recipients"`
	// Sender is where notices go; default the message's From address.
	Sender     string   `json:"sender,omitempty"`
	Deadline   string   `json:"deadline,omitempty"`
	Alternates []string `json:"alternates,omitempty"`
	OnExpiry   string   `json:"on_expiry,omitempty"`
	Reveal     string   `json:"reveal,omitempty"`
}

// Submission is a checked SubmitRequest.
type Submission struct {
	Raw        []byte
	Recipients []string
	Sender     string
	Spec       certified.SpecFields
}

// Bounds on a submission besides the message size.
const (
	maxRecipients = 100
	maxAddrLen    = 320 // RFC 3696 errata: 64 + @ + 255
	maxFieldLen   = 100
)

// ErrTooLarge is a message over the size limit (HTTP 413).
var ErrTooLarge = errors.New("message too large")

// DecodeSubmit parses and checks a submit request body. It is strict: one
// JSON object, no unknown fields (a misspelt "deadlne" must not silently
// give the default deadline), no trailing data, exactly one form of the
// message, which must be at most maxMessage bytes (ErrTooLarge) and have
// an RFC 5322 header section.
func DecodeSubmit(body []byte, maxMessage int64) (*Submission, error) {
	// JSON is UTF-8 (RFC 8259). encoding/json would replace invalid bytes
	// in a string by U+FFFD, storing an M the sender never sent.
	if !utf8.Valid(body) {
		return nil, errors.New("the request body is not valid UTF-8 (send arbitrary bytes as message_base64)")
	}
	if err := checkMembers(body); err != nil {
		return nil, fmt.Errorf("decoding the request: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req SubmitRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("decoding the request: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding the request: data after the JSON object")
	}
	var raw []byte
	switch {
	case req.Message != nil && req.MessageBase64 != nil:
		return nil, errors.New("give the message once: message or message_base64, not both")
	case req.Message != nil:
		raw = []byte(*req.Message)
	case req.MessageBase64 != nil:
		// The decoded size is known before decoding: refuse early.
		if int64(base64.StdEncoding.DecodedLen(len(*req.MessageBase64))) > maxMessage+2 {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxMessage)
		}
		var err error
		if raw, err = base64.StdEncoding.Strict().DecodeString(*req.MessageBase64); err != nil {
			return nil, fmt.Errorf("message_base64: %w", err)
		}
	default:
		return nil, errors.New("no message: give message (a string) or message_base64")
	}
	if len(raw) == 0 {
		return nil, errors.New("the message is empty")
	}
	if maxMessage > 0 && int64(len(raw)) > maxMessage {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(raw), maxMessage)
	}
	// The item is certified by the request's fields; a Certified-Delivery
	// field in M that some reader may show and certmail cannot read is
	// refused here as on every other way in (certified.FindRequest).
	if _, _, err := certified.FindRequest(raw); err != nil {
		return nil, fmt.Errorf("the message: %w", err)
	}
	if _, err := mail.ReadMessage(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("the message is not an RFC 5322 message: %w", err)
	}
	if len(req.Recipients) == 0 {
		return nil, errors.New("no recipients")
	}
	if len(req.Recipients) > maxRecipients {
		return nil, fmt.Errorf("%d recipients, at most %d", len(req.Recipients), maxRecipients)
	}
	for _, r := range req.Recipients {
		if err := checkAddrField("recipient", r, true); err != nil {
			return nil, err
		}
	}
	s := &Submission{Raw: raw, Recipients: req.Recipients}
	if req.Sender != "" {
		if err := checkAddrField("sender", req.Sender, false); err != nil {
			return nil, err
		}
		addr, err := mail.ParseAddress(req.Sender)
		if err != nil {
			return nil, fmt.Errorf("sender %q is not an address: %w", req.Sender, err)
		}
		s.Sender = addr.Address
	}
	for _, a := range req.Alternates {
		if err := checkAddrField("alternate", a, true); err != nil {
			return nil, err
		}
	}
	for name, v := range map[string]string{"deadline": req.Deadline, "on_expiry": req.OnExpiry, "reveal": req.Reveal} {
		if len(v) > maxFieldLen {
			return nil, fmt.Errorf("%s: longer than %d bytes", name, maxFieldLen)
		}
	}
	s.Spec = certified.SpecFields{Deadline: req.Deadline, OnExpiry: req.OnExpiry, Reveal: req.Reveal}
	if len(req.Alternates) > 0 {
		s.Spec.Alternates = req.Alternates
	}
	return s, nil
}

// submitMembers are the members a submit request may have, spelt exactly.
var submitMembers = map[string]bool{"message": true, "message_base64": true, "recipients": true, "sender": true,
	"deadline": true, "alternates": true, "on_expiry": true, "reveal": true}

// checkMembers insists that the request's members are spelt exactly and
// given once. encoding/json matches names without regard to case and
// keeps the last of duplicates; other JSON parsers keep the first or
// refuse. A proxy or a log that reads the request must not see another
// recipient or message than the one posted.
func checkMembers(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil {
		return err
	} else if tok != json.Delim('{') {
		return errors.New("the request is not a JSON object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		if !submitMembers[name] {
			return fmt.Errorf("json: unknown field %q", name)
		}
		if seen[name] {
			return fmt.Errorf("field %q given twice", name)
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

// checkAddrField refuses what no address or account name can be, before
// anything is looked up: empty values, control characters, absurd length.
func checkAddrField(what, v string, bare bool) error {
	switch {
	case strings.TrimSpace(v) == "":
		return fmt.Errorf("empty %s", what)
	case len(v) > maxAddrLen:
		return fmt.Errorf("%s: longer than %d bytes", what, maxAddrLen)
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%s %q contains control characters", what, v)
	case bare && strings.ContainsAny(v, "<>\" ,;"):
		return fmt.Errorf("%s %q: give a bare address or account name", what, v)
	}
	return nil
}
