package receipts

import (
	"strings"
	"testing"
)

func TestNewLabelIsValidAndUnique(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		l, err := NewLabel()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidLabel(l) {
			t.Fatalf("NewLabel() = %q, not ValidLabel", l)
		}
		if len(l) != LabelLen {
			t.Fatalf("len(%q) = %d, want %d", l, len(l), LabelLen)
		}
		if seen[l] {
			t.Fatalf("NewLabel() repeated %q", l)
		}
		seen[l] = true
	}
}

func TestValidLabelRejects(t *testing.T) {
	good, err := NewLabel()
	if err != nil {
		t.Fatal(err)
	}
	body := good[len(LabelPrefix):]
	// The last character carries 3 data bits and 2 unused ones; a
	// label with an unused bit set decodes to the same bytes, so it is
	// a second spelling and must be refused.
	last := strings.IndexByte("abcdefghijklmnopqrstuvwxyz234567", body[len(body)-1])
	nonCanonical := good[:len(good)-1] + string("abcdefghijklmnopqrstuvwxyz234567"[last|1])
	cases := map[string]string{
		"empty":              "",
		"prefix only":        LabelPrefix,
		"upper case":         strings.ToUpper(good),
		"upper case body":    LabelPrefix + strings.ToUpper(body),
		"wrong prefix":       "xx-" + body,
		"no prefix":          body + "aaa",
		"short":              good[:len(good)-1],
		"long":               good + "a",
		"trailing newline":   good[:len(good)-1] + "\n",
		"embedded newline":   LabelPrefix + body[:10] + "\n" + body[11:],
		"digit 1 not base32": LabelPrefix + "1" + body[1:],
		"padding":            LabelPrefix + body[:25] + "=",
		"unused bits set":    nonCanonical,
		"non-ASCII":          LabelPrefix + "é" + body[2:],
	}
	for name, s := range cases {
		if s == good {
			continue // the unused-bits case when the bit was already set
		}
		if ValidLabel(s) {
			t.Errorf("%s: ValidLabel(%q) = true", name, s)
		}
	}
	if !ValidLabel(good) {
		t.Errorf("ValidLabel(%q) = false", good)
	}
}
