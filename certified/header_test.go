package certified

import (
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	spec, err := ParseSpec("deadline=72h; alternate=desk@example.org, Bob <bob@example.org>; on-expiry=deemed-delivery; reveal=none", now)
	if err != nil {
		t.Fatal(err)
	}
	if !spec.Deadline.Equal(now.Add(72*time.Hour)) || spec.OnExpiry != OnExpiryDeemedDelivery || spec.Reveal != RevealNone ||
		strings.Join(spec.Alternates, ",") != "desk@example.org,bob@example.org" {
		t.Fatalf("spec %+v", spec)
	}
	spec, err = ParseSpec("Deadline=2026-11-30T00:00:00Z", now)
	if err != nil || !spec.Deadline.Equal(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("rfc3339: %+v %v", spec, err)
	}
	bad := map[string]string{
		"":                                   "empty value",
		"reveal=none":                        "missing deadline",
		"deadline=":                          "has no value",
		"deadline=soon":                      "want an RFC 3339 time",
		"deadline=-1h":                       "must be positive",
		"deadline=2020-01-01T00:00:00Z":      "in the past",
		"deadline=9000h":                     "more than a year",
		"deadline=1h; deadline=2h":           "given twice",
		"deadline=1h; colour=blue":           "unknown parameter",
		"deadline=1h; on-expiry=maybe":       "want non-delivery",
		"deadline=1h; reveal=all":            "want none",
		"deadline=1h; alternate=not an addr": "not an address",
	}
	for in, want := range bad {
		_, err := ParseSpec(in, now)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSpec(%q) = %v, want error containing %q", in, err, want)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"deadline=72h", "deadline=2026-12-01T00:00:00Z; alternate=a@b.c, d@e.f; on-expiry=non-delivery; reveal=sender-subject",
		";;;", "deadline=1h;alternate=<x@y>", "alternate=,,,",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s, now)
		if err != nil {
			return
		}
		if !spec.Deadline.After(now) {
			t.Fatalf("accepted deadline %v not after now", spec.Deadline)
		}
		if len(spec.Alternates) > maxAlternates {
			t.Fatalf("accepted %d alternates", len(spec.Alternates))
		}
	})
}
