package certified

import (
	"fmt"
	"net/mail"
	"strings"
	"time"

	"certmail/mailbox"
)

// SpecFields are the handling options of an item given field by field (the
// HTTP API) rather than as a Certified-Delivery header. Empty fields take
// the configured defaults.
type SpecFields struct {
	Deadline   string // RFC 3339 time or Go duration from now
	Alternates []string
	OnExpiry   string
	Reveal     string
}

// SpecFromFields checks the fields by the same rules as ParseSpec applies
// to a header (deadline within a year, alternates as addresses, known
// expiry and reveal policies), so that an item is handled alike however it
// arrived. Errors name the field, for an API client to show.
func SpecFromFields(f SpecFields, now time.Time) (Spec, error) {
	var spec Spec
	if f.Deadline != "" {
		d, err := parseDeadline(strings.TrimSpace(f.Deadline), now)
		if err != nil {
			return spec, fmt.Errorf("deadline: %w", err)
		}
		spec.Deadline = d
	}
	if len(f.Alternates) > maxAlternates {
		return spec, fmt.Errorf("alternates: %d given, at most %d", len(f.Alternates), maxAlternates)
	}
	for _, a := range f.Alternates {
		if a = strings.TrimSpace(a); !strings.Contains(a, "@") {
			// A bare local account, as recipients may be given too.
			acct, err := mailbox.NormalizeAccount(a)
			if err != nil {
				return spec, fmt.Errorf("alternates: %q is neither an address nor an account name: %w", a, err)
			}
			spec.Alternates = append(spec.Alternates, acct)
			continue
		}
		addr, err := mail.ParseAddress(a)
		if err != nil {
			return spec, fmt.Errorf("alternates: %q is not an address: %w", a, err)
		}
		spec.Alternates = append(spec.Alternates, strings.ToLower(addr.Address))
	}
	switch v := strings.ToLower(f.OnExpiry); v {
	case "", OnExpiryNonDelivery, OnExpiryDeemedDelivery:
		spec.OnExpiry = v
	default:
		return spec, fmt.Errorf("on_expiry %q: want %s or %s", f.OnExpiry, OnExpiryNonDelivery, OnExpiryDeemedDelivery)
	}
	switch v := strings.ToLower(f.Reveal); v {
	case "", RevealNone, RevealSender, RevealSenderSubject:
		spec.Reveal = v
	default:
		return spec, fmt.Errorf("reveal %q: want %s, %s or %s", f.Reveal, RevealNone, RevealSender, RevealSenderSubject)
	}
	return spec, nil
}
