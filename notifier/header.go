package notifier

import (
	"fmt"
	"mime"
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

// recipient is a To: entry: an RFC 5322 address, or the bare name of a
// local account. Stubs and receipts are put straight into a mailbox, and
// accounts need not be mail addresses.
type recipient struct {
	addr    *mail.Address // nil for a bare account name
	account string
}

func parseRecipient(s string) (recipient, error) {
	if strings.Contains(s, "@") {
		addr, err := parseAddress("recipient", s)
		if err != nil {
			return recipient{}, err
		}
		return recipient{addr: addr}, nil
	}
	switch {
	case s == "":
		return recipient{}, fmt.Errorf("recipient is empty")
	case len(s) > 255:
		return recipient{}, fmt.Errorf("recipient account name is %d bytes long, at most 255 allowed", len(s))
	case oneLine(s) != s:
		return recipient{}, fmt.Errorf("recipient account name %q has control characters or stray spaces", s)
	}
	return recipient{account: s}, nil
}

// header renders the recipient for a To: field. A bare account name
// becomes an empty group named after it ("alice":;), which RFC 5322
// allows and mail clients show as the name, rather than an address that
// does not exist.
func (r recipient) header() string {
	if r.addr != nil {
		return r.addr.String()
	}
	return mime.QEncoding.Encode("utf-8", quotePhrase(r.account)) + ":;"
}

// name is what the recipient logs in as, for the `certmail sign` hint.
func (r recipient) name() string {
	if r.addr != nil {
		return r.addr.Address
	}
	return r.account
}

// quotePhrase makes s a quoted-string unless it is plain ASCII letters and
// digits; non-ASCII is left to the encoded-word around it.
func quotePhrase(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		return s
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r > 0x7e }) {
		return s // an encoded-word cannot sit inside quotes
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func recipientsHeader(rs []recipient) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.header()
	}
	return strings.Join(parts, ", ")
}
