package receipts

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
)

// LabelPrefix starts every label, so a label is recognisable in logs, mail
// headers and file names.
const LabelPrefix = "cm-"

// labelRandomBytes is 128 bits: enough that labels can neither collide nor
// be guessed, which matters because a label names an item in public
// evidence and in requests from the network.
const labelRandomBytes = 16

// LabelLen is the length of every valid label: the prefix and 26 base32
// characters for 16 bytes.
const LabelLen = len(LabelPrefix) + 26

// labelEncoding is lower-case base32 without padding.
var labelEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").
	WithPadding(base32.NoPadding)

// NewLabel returns a fresh random label L, e.g. "cm-" followed by 26
// lower-case base32 characters. It is plain ASCII, as H(L,r,M) requires.
func NewLabel() (string, error) {
	var b [labelRandomBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new label: %w", err)
	}
	return LabelPrefix + labelEncoding.EncodeToString(b[:]), nil
}

// ValidLabel reports whether s is exactly a label NewLabel could have made.
// It is meant for untrusted input (IMAP, HTTP, a COD's payload): anything
// else, including upper case or extra whitespace, is rejected.
func ValidLabel(s string) bool {
	if len(s) != LabelLen {
		return false
	}
	rest, ok := strings.CutPrefix(s, LabelPrefix)
	if !ok {
		return false
	}
	var b [labelRandomBytes + 1]byte
	n, err := labelEncoding.Decode(b[:], []byte(rest))
	// Re-encoding must give back the input, so that every label has one
	// spelling: the decoder skips newlines and ignores the unused low
	// bits of the last character.
	return err == nil && n == labelRandomBytes && labelEncoding.EncodeToString(b[:n]) == rest
}

// checkLabel is ValidLabel with an error that says what is wrong.
func checkLabel(s string) error {
	if ValidLabel(s) {
		return nil
	}
	return fmt.Errorf("label %q is not a certmail label (want %q and 26 characters of a-z, 2-7)", truncateForError(s), LabelPrefix)
}

// truncateForError keeps error messages short when the input is hostile.
func truncateForError(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
