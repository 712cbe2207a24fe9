package imapsrv

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestBaseSubject: RFC 5256 section 2.1's extraction on the forms its
// ABNF allows.
func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		reply    bool
	}{
		{"Hello", "Hello", false},
		{"Re: Hello", "Hello", true},
		{"RE:Re:  re : Hello", "Hello", true},
		{"Fwd: Hello", "Hello", true},
		{"fw[x]: Hello", "Hello", true},
		{"[list] Re: Hello", "Hello", true},
		{"[list] Hello", "Hello", false},
		{"[list]", "[list]", false},
		{"Re: [list]", "[list]", true},
		{"Hello (fwd) (FWD)  ", "Hello", true},
		{"[fwd: Re: Hello]", "Hello", true},
		{"[Fwd: [fwd: Hello] (fwd)]", "Hello", true},
		{"  Hello\t\tthere  ", "Hello there", false},
		{"Re:", "", true},
		{"Ready: go", "Ready: go", false},
		// imaptest sort-subject
		{"Re: [FWD: c]", "c", true},
		{"[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b", true},
		{"re: [fwd: [fwd: re: [fwd: babylon]]]", "babylon", true},
		{"Ad: Re: Ad: Re: Ad: x", "Ad: Re: Ad: Re: Ad: x", false},
		{"[xyz]", "[xyz]", false},
		{"", "", false},
	} {
		got, reply := baseSubject(tc.in)
		if got != tc.want || reply != tc.reply {
			t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", tc.in, got, reply, tc.want, tc.reply)
		}
	}
}

// FuzzBaseSubject: extraction ends on any subject, never grows it, keeps
// valid UTF-8 valid, and is idempotent on what it extracts.
func FuzzBaseSubject(f *testing.F) {
	for _, s := range []string{"Re: [a] Fwd: x (fwd)", "[fwd: [fwd: ]]", "[", "re [x]:", "\xff Re: y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, _ := baseSubject(s)
		if len(b) > len(s) {
			t.Fatalf("baseSubject(%q) = %q: longer", s, b)
		}
		if utf8.ValidString(s) && !utf8.ValidString(b) {
			t.Fatalf("baseSubject(%q) = %q: invalid UTF-8", s, b)
		}
		if again, _ := baseSubject(b); again != b && !strings.Contains(s, "\r") {
			t.Fatalf("baseSubject not idempotent: %q -> %q -> %q", s, b, again)
		}
	})
}

// FuzzSortKeys: the sort keys of any message survive their stored form,
// and any bytes as a stored form are an error, never a panic.
func FuzzSortKeys(f *testing.F) {
	f.Add([]byte("Subject: Re: x\r\nFrom: A <a@b>\r\nReferences: <1@x> <2@x>\r\n\r\nbody"))
	f.Add([]byte("\x00S1\x05hello"))
	f.Add([]byte("\x00S2\x05hello"))
	f.Add([]byte("From: d\r\nTo: empty:;\r\nCc: g: a@b;\r\nSubject: Re: [FWD: c]\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		k := computeSortKeys(raw)
		enc := encodeSortKeys(nil, k)
		got, rest, err := decodeSortKeys(enc)
		if err != nil || len(rest) != 0 {
			t.Fatalf("decoding what was encoded: %v, %d left", err, len(rest))
		}
		if len(k.References) == 0 {
			k.References = nil
		}
		if !reflect.DeepEqual(got, k) {
			t.Fatalf("round trip: %+v, want %+v", got, k)
		}
		_, _, _ = decodeSortKeys(raw)
		_, _, _ = splitSummary(raw)
	})
}
