package receipts

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// HashPrefix is the algorithm tag written before a hex digest.
const HashPrefix = "sha256:"

// ItemHash computes H(L,M) = SHA-256(len(L) as 4-byte big-endian ‖ L ‖ M),
// as DESIGN.md defines it, so that anyone holding the label and the message
// file can recompute it.
func ItemHash(label string, m []byte) [32]byte {
	h := sha256.New()
	writeLabel(h, label)
	h.Write(m)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// ItemHashReader is ItemHash over a message read from r.
func ItemHashReader(label string, r io.Reader) ([32]byte, error) {
	h := sha256.New()
	writeLabel(h, label)
	var sum [32]byte
	if _, err := io.Copy(h, r); err != nil {
		return sum, fmt.Errorf("hashing message: %w", err)
	}
	h.Sum(sum[:0])
	return sum, nil
}

func writeLabel(w io.Writer, label string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(label)))
	w.Write(n[:])
	io.WriteString(w, label)
}

// FormatHash renders a digest as "sha256:<lower-case hex>".
func FormatHash(sum [32]byte) string {
	return HashPrefix + hex.EncodeToString(sum[:])
}

// ParseHash parses the "sha256:<hex>" form.
func ParseHash(s string) ([32]byte, error) {
	var sum [32]byte
	rest, ok := strings.CutPrefix(s, HashPrefix)
	if !ok {
		return sum, fmt.Errorf("hash %q: want prefix %q", s, HashPrefix)
	}
	if len(rest) != 64 {
		return sum, fmt.Errorf("hash %q: want 64 hex digits, have %d", s, len(rest))
	}
	if _, err := hex.Decode(sum[:], []byte(rest)); err != nil {
		return sum, fmt.Errorf("hash %q: %w", s, err)
	}
	return sum, nil
}
