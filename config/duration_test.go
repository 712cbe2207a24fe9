package config

import (
	"encoding/json"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"15s": 15 * time.Second, "72h": 72 * time.Hour, "1h30m": 90 * time.Minute,
		"1d": day, "7d": 7 * day, "1d12h": 36 * time.Hour, "1.5d": 36 * time.Hour,
		"2d30m": 2*day + 30*time.Minute, "-1d": -day, "0d": 0, "1d1d": 2 * day,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1", "1dd", "soon", "1x", ".d", "d1", "1d-", "999999999999d", "1d 2h"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 15 * time.Second: "15s", time.Hour: "1h", 90 * time.Minute: "1h30m", 10 * time.Second: "10s",
		24 * time.Hour: "1d", 7 * 24 * time.Hour: "7d", 36 * time.Hour: "1d12h", 1500 * time.Millisecond: "1.5s",
		-time.Hour: "-1h", 24*time.Hour + time.Second: "1d1s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestDurationEverywhere: the TOML file, a flag and JSON read days; JSON
// writes a string, and still reads the nanoseconds written before.
func TestDurationEverywhere(t *testing.T) {
	cfg, err := Parse("t.toml", []byte("[certified]\ndeadline = \"7d\"\n"))
	if err != nil || time.Duration(cfg.Certified.Deadline) != 7*24*time.Hour {
		t.Fatalf("TOML: %v, %v", cfg, err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var d Duration
	fs.Var(&d, "after", "")
	if err := fs.Parse([]string{"--after", "1d"}); err != nil || time.Duration(d) != 24*time.Hour {
		t.Fatalf("flag: %v, %v", d, err)
	}
	b, err := json.Marshal(struct{ D Duration }{Duration(36 * time.Hour)})
	if err != nil || string(b) != `{"D":"1d12h"}` {
		t.Fatalf("JSON: %s, %v", b, err)
	}
	var v struct{ D Duration }
	for in, want := range map[string]time.Duration{`{"D":"1d12h"}`: 36 * time.Hour, `{"D":3600000000000}`: time.Hour} {
		if err := json.Unmarshal([]byte(in), &v); err != nil || time.Duration(v.D) != want {
			t.Errorf("JSON %s: %v, %v", in, v.D, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"D":"soon"}`), &v); err == nil || !strings.Contains(err.Error(), "7d") {
		t.Errorf("JSON of a bad string: %v", err)
	}
}

// FuzzParseDuration: no panic; without a day unit it is exactly Go's
// parser; what it accepts, FormatDuration writes back to the same value.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"15s", "7d", "1d12h", "1.5d", "-1d", "1h30m", "d", "1dd", "9223372036854775807ns", "106751d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if !strings.Contains(s, "d") {
			gd, gerr := time.ParseDuration(s)
			if (err == nil) != (gerr == nil) || d != gd {
				t.Fatalf("%q: %v, %v; Go: %v, %v", s, d, err, gd, gerr)
			}
		}
		if err != nil {
			return
		}
		back, err := ParseDuration(FormatDuration(d))
		if err != nil || back != d {
			t.Fatalf("%q = %v, written %q, read back %v, %v", s, d, FormatDuration(d), back, err)
		}
	})
}
