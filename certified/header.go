package certified

import (
	"fmt"
	"net/mail"
	"strings"
	"time"

	"certmail/config"
)

// HeaderName is the header that makes a delivered message certified.
const HeaderName = "Certified-Delivery"

// What happens when the deadline passes without a COD or a refusal.
const (
	OnExpiryNonDelivery    = "non-delivery"
	OnExpiryDeemedDelivery = "deemed-delivery"
)

// What the stub reveals of M before acceptance.
const (
	RevealNone          = "none"
	RevealSender        = "sender"
	RevealSenderSubject = "sender-subject"
)

// Spec is a parsed Certified-Delivery header: how one item is to be
// handled. Zero fields take the configured defaults.
type Spec struct {
	Deadline   time.Time
	Alternates []string
	OnExpiry   string
	Reveal     string
}

// maxAlternates bounds the originator-specified alternates of one item.
const maxAlternates = 10

// ParseSpec parses a Certified-Delivery header value:
//
//	deadline=<RFC 3339 time or Go duration>[; alternate=<addr>[, <addr>...]]
//	[; on-expiry=non-delivery|deemed-delivery][; reveal=none|sender|sender-subject]
//
// A duration is counted from now. Errors say what is wrong, for the 5.6.0
// reply that refuses the message.
func ParseSpec(value string, now time.Time) (Spec, error) {
	var spec Spec
	seen := make(map[string]bool)
	value = strings.TrimSpace(value)
	if value == "" {
		return spec, fmt.Errorf("%s: empty value", HeaderName)
	}
	for _, param := range strings.Split(value, ";") {
		param = strings.TrimSpace(param)
		if param == "" {
			continue
		}
		key, val, ok := strings.Cut(param, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.TrimSpace(val)
		if !ok || val == "" {
			return spec, fmt.Errorf("%s: parameter %+q has no value", HeaderName, param)
		}
		if seen[key] {
			return spec, fmt.Errorf("%s: parameter %+q given twice", HeaderName, key)
		}
		seen[key] = true
		switch key {
		case "deadline":
			d, err := parseDeadline(val, now)
			if err != nil {
				return spec, fmt.Errorf("%s: %w", HeaderName, err)
			}
			spec.Deadline = d
		case "alternate":
			for _, a := range strings.Split(val, ",") {
				addr, err := mail.ParseAddress(strings.TrimSpace(a))
				if err != nil {
					return spec, fmt.Errorf("%s: alternate %+q is not an address: %w", HeaderName, strings.TrimSpace(a), err)
				}
				spec.Alternates = append(spec.Alternates, strings.ToLower(addr.Address))
			}
			if len(spec.Alternates) > maxAlternates {
				return spec, fmt.Errorf("%s: %d alternates, at most %d", HeaderName, len(spec.Alternates), maxAlternates)
			}
		case "on-expiry":
			switch v := strings.ToLower(val); v {
			case OnExpiryNonDelivery, OnExpiryDeemedDelivery:
				spec.OnExpiry = v
			default:
				return spec, fmt.Errorf("%s: on-expiry %+q: want non-delivery or deemed-delivery", HeaderName, val)
			}
		case "reveal":
			switch v := strings.ToLower(val); v {
			case RevealNone, RevealSender, RevealSenderSubject:
				spec.Reveal = v
			default:
				return spec, fmt.Errorf("%s: reveal %+q: want none, sender or sender-subject", HeaderName, val)
			}
		default:
			return spec, fmt.Errorf("%s: unknown parameter %+q", HeaderName, key)
		}
	}
	if !seen["deadline"] {
		return spec, fmt.Errorf("%s: missing deadline=", HeaderName)
	}
	return spec, nil
}

// maxDeadline bounds how far ahead a deadline may be: a year.
const maxDeadline = 366 * 24 * time.Hour

func parseDeadline(val string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, val); err == nil {
		if !t.After(now) {
			return time.Time{}, fmt.Errorf("deadline %s is in the past", val)
		}
		if t.Sub(now) > maxDeadline {
			return time.Time{}, fmt.Errorf("deadline %s is more than a year away", val)
		}
		return t.UTC(), nil
	}
	// The one duration parser (Go's forms and days: 72h, 3d).
	d, err := config.ParseDuration(val)
	if err != nil {
		return time.Time{}, fmt.Errorf("deadline %+q: want an RFC 3339 time or a duration such as 72h or 3d", val)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("deadline %+q: duration must be positive", val)
	}
	if d > maxDeadline {
		return time.Time{}, fmt.Errorf("deadline %+q is more than a year away", val)
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}
