package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a duration as Go writes them ("15s", "2m", "72h",
// "1h30m") or with days ("1d", "7d", "1d12h", "1.5d"; a day is 24 hours).
// It is the one parser for every duration certmail reads: the TOML file,
// command-line flags, and the Certified-Delivery field's deadline.
func ParseDuration(s string) (time.Duration, error) {
	if !strings.Contains(s, "d") {
		return time.ParseDuration(s)
	}
	in := s
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var total time.Duration
	for s != "" {
		// One term: a number and its unit.
		i := 0
		for i < len(s) && (s[i] == '.' || ('0' <= s[i] && s[i] <= '9')) {
			i++
		}
		j := i
		for j < len(s) && s[j] != '.' && (s[j] < '0' || s[j] > '9') {
			j++
		}
		num, unit := s[:i], s[i:j]
		s = s[j:]
		var d time.Duration
		if unit == "d" {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || num == "" {
				return 0, fmt.Errorf("time: invalid duration %q", in)
			}
			h := f * 24 * float64(time.Hour)
			if h > math.MaxInt64 {
				return 0, fmt.Errorf("time: invalid duration %q", in)
			}
			d = time.Duration(h)
		} else {
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil || num == "" {
				return 0, fmt.Errorf("time: invalid duration %q", in)
			}
		}
		if total > math.MaxInt64-d {
			return 0, fmt.Errorf("time: invalid duration %q", in)
		}
		total += d
	}
	if neg {
		total = -total
	}
	return total, nil
}

// FormatDuration writes d for people and for ParseDuration: whole days
// as "7d", "1d12h"; the rest as Go does without trailing zero units
// ("90m" is "1h30m", not "1h30m0s").
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d < 0 {
		return "-" + FormatDuration(-d)
	}
	var b strings.Builder
	if d >= day {
		fmt.Fprintf(&b, "%dd", d/day)
		d %= day
		if d == 0 {
			return b.String()
		}
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	b.WriteString(s)
	return b.String()
}

// Duration is a time.Duration written as a string ("15s", "2m", "7d"):
// in the TOML file, as a command-line flag (flag.Value) and in JSON.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration like \"15s\", \"2h\" or \"7d\": %w", err)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// Set implements flag.Value, so a flag reads days too.
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }

// MarshalJSON writes the duration as a string ("7d"), not nanoseconds.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a string, or a number of nanoseconds as
// time.Duration was written to JSON before (records already stored).
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return d.UnmarshalText([]byte(s))
	}
	var ns int64
	if err := json.Unmarshal(b, &ns); err != nil {
		return errors.New("want a duration string like \"7d\" or a number of nanoseconds")
	}
	*d = Duration(ns)
	return nil
}
