package kv

import (
	"bytes"
	"testing"
	"time"
)

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ p, want []byte }{
		{nil, nil},
		{[]byte{}, nil},
		{[]byte("a"), []byte("b")},
		{[]byte("a\xff"), []byte("b")},
		{[]byte("a\xfe\xff"), []byte("a\xff")},
		{[]byte("\xff\xff"), nil},
	} {
		if got := PrefixEnd(tc.p); !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("PrefixEnd(%q) = %q; want %q", tc.p, got, tc.want)
		}
	}
}

func TestBounds(t *testing.T) {
	for _, tc := range []struct {
		r      Range
		lo, hi string
		hiNil  bool
	}{
		{Range{}, "", "", true},
		{Prefix([]byte("ab")), "ab", "ac", false},
		{Range{Prefix: []byte("ab"), Start: []byte("a"), End: []byte("b")}, "ab", "ac", false},
		{Range{Prefix: []byte("ab"), Start: []byte("abc"), End: []byte("abd")}, "abc", "abd", false},
		{Range{Start: []byte("x")}, "x", "", true},
		{Range{Prefix: []byte("\xff"), End: []byte("\xff\x10")}, "\xff", "\xff\x10", false},
	} {
		lo, hi := tc.r.Bounds()
		if lo == nil || string(lo) != tc.lo || (hi == nil) != tc.hiNil || string(hi) != tc.hi {
			t.Errorf("%+v.Bounds() = %q, %q; want %q, %q (nil %v)", tc.r, lo, hi, tc.lo, tc.hi, tc.hiNil)
		}
	}
}

func TestBackoff(t *testing.T) {
	for attempt, ceiling := range map[int]time.Duration{1: 500 * time.Microsecond, 2: time.Millisecond, 4: 4 * time.Millisecond, 8: 50 * time.Millisecond, 19: 50 * time.Millisecond, 100: 50 * time.Millisecond} {
		for range 100 {
			if d := Backoff(attempt); d <= 0 || d > ceiling {
				t.Fatalf("Backoff(%d) = %v, want in (0, %v]", attempt, d, ceiling)
			}
		}
	}
}
