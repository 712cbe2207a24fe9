package notifier

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/emersion/go-message/mail"
)

// oneLine makes s safe for a header field or a one-line display: control
// characters, CR and LF above all, become spaces, so that a revealed
// subject cannot inject header fields.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s), unicode.IsSpace), " ")
}

// parseAddress parses one RFC 5322 address ("Name <a@b>" or "a@b").
func parseAddress(field, s string) (*mail.Address, error) {
	if s == "" {
		return nil, fmt.Errorf("%s address is empty", field)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%s address %q: %w", field, s, err)
	}
	return addr, nil
}

// addressDomain returns the part after the last "@", for Message-IDs.
func addressDomain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i < len(addr)-1 {
		return addr[i+1:]
	}
	return "localhost"
}
