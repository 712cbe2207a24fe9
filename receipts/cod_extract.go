package receipts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
)

// ErrNoCOD means ExtractCOD found nothing that looks like a COD.
var ErrNoCOD = errors.New("no COD found")

// Limits for ExtractCOD, which reads messages from the network.
const (
	maxExtractParts    = 64
	maxExtractPartRead = 1 << 20
)

// ExtractCOD finds the one COD in raw, which is either the bare compact JWS
// (possibly with surrounding text) or an RFC 5322 message holding it in a
// text/plain part or in a part of type application/jose or
// application/certmail-cod+jws, inline or attached. A COD must pass
// ParseCOD to count; the signature is not checked. Several different CODs
// are an error, since the gateway must not pick one for B.
func ExtractCOD(raw []byte) (string, error) {
	if trimmed := bytes.TrimSpace(raw); looksLikeCompactJWS(trimmed) {
		s := string(trimmed)
		if _, _, err := ParseCOD(s); err != nil {
			return "", err
		}
		return s, nil
	}
	var f codFinder
	readErr := f.scanMessage(raw)
	if len(f.found) == 0 {
		// Not a message, a broken one, or one with the COD somewhere
		// else (bare text whose first line has a colon parses as a
		// header): read it all as text.
		f.scanText(raw)
	}
	if len(f.found) == 0 && f.rejected == 0 && readErr != nil {
		return "", fmt.Errorf("%w (reading the message: %v)", ErrNoCOD, readErr)
	}
	return f.result()
}

// codFinder gathers candidate CODs.
type codFinder struct {
	found     []string // distinct, each passes ParseCOD
	rejected  int      // JWS-shaped candidates that failed ParseCOD
	rejection error    // why the first of them failed
}

func (f *codFinder) result() (string, error) {
	switch {
	case len(f.found) == 1:
		return f.found[0], nil
	case len(f.found) > 1:
		n := fmt.Sprint(len(f.found))
		if len(f.found) >= maxDistinctCODs {
			n = "at least " + n
		}
		return "", fmt.Errorf("%w: found %s different CODs, hand in one at a time", ErrMalformedCOD, n)
	case f.rejected > 0:
		return "", fmt.Errorf("found a JWS that is not a valid COD: %w", f.rejection)
	default:
		return "", ErrNoCOD
	}
}

func (f *codFinder) scanMessage(raw []byte) error {
	entity, err := message.Read(bytes.NewReader(raw))
	if err != nil && !isTolerableMIMEError(err) {
		return err
	}
	parts := 0
	return entity.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil && !isTolerableMIMEError(err) {
			return err
		}
		parts++
		if parts > maxExtractParts {
			return fmt.Errorf("more than %d MIME parts", maxExtractParts)
		}
		mediaType, _, _ := part.Header.ContentType()
		switch mediaType {
		case "", "text/plain", "application/jose", "application/" + CODMediaType:
		default:
			return nil
		}
		body, err := io.ReadAll(io.LimitReader(part.Body, maxExtractPartRead))
		if err != nil {
			return err
		}
		f.scanText(body)
		return nil
	})
}

// isTolerableMIMEError accepts an unknown charset or transfer encoding: the
// body is still readable, and a COD is ASCII.
func isTolerableMIMEError(err error) bool {
	return message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)
}

// scanText adds every JWS-shaped token in text. If there is none, it also
// tries the whole text with white space removed, for a COD a mail client
// wrapped across lines.
func (f *codFinder) scanText(text []byte) {
	before := len(f.found) + f.rejected
	for _, tok := range bytes.FieldsFunc(text, func(r rune) bool { return !isJWSChar(r) }) {
		if looksLikeCompactJWS(tok) {
			f.consider(string(tok))
		}
	}
	if len(f.found)+f.rejected > before {
		return
	}
	joined := bytes.Join(bytes.Fields(text), nil)
	if looksLikeCompactJWS(joined) {
		f.consider(string(joined))
	}
}

// maxDistinctCODs stops collecting once the answer is surely "too many",
// so hostile input cannot make the duplicate check quadratic.
const maxDistinctCODs = 8

func (f *codFinder) consider(candidate string) {
	if len(f.found) >= maxDistinctCODs {
		return
	}
	for _, seen := range f.found {
		if seen == candidate {
			return
		}
	}
	if _, _, err := ParseCOD(candidate); err != nil {
		if f.rejected == 0 {
			f.rejection = err
		}
		f.rejected++
		return
	}
	f.found = append(f.found, candidate)
}

// looksLikeCompactJWS is a cheap shape test: three base64url parts with a
// JSON object ("eyJ" is base64 for `{"`) as header, short enough to be a
// COD.
func looksLikeCompactJWS(b []byte) bool {
	if len(b) > maxCODSize || !bytes.HasPrefix(b, []byte("eyJ")) || bytes.Count(b, []byte(".")) != 2 {
		return false
	}
	return !strings.ContainsFunc(string(b), func(r rune) bool { return !isJWSChar(r) })
}

func isJWSChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
}
