package receipts

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// HashPrefix is the algorithm tag written before a hex digest.
const HashPrefix = "sha256:"

// An item's commitment is what the stub shows B and what B's COD signs
// (CEM-ip's H(L,M)). It comes in two versions, and the certificate of
// posting says which (evidence: data.commitment of the SubmissionAcceptance).
const (
	// CommitmentUnsalted is H(L,M) = SHA-256(len(L) ‖ L ‖ M). Items posted
	// before salting carry it and still verify; none are made any more,
	// because anyone who can list the likely messages (a verdict, an
	// amount from a template) can hash each and learn M from the stub,
	// then acknowledge only what suits them: the selective receipt
	// CEM-ip exists to prevent.
	CommitmentUnsalted = 1
	// CommitmentSalted is H(L,r,M) = SHA-256(len(L) ‖ L ‖ len(r) ‖ r ‖ M)
	// with r a fresh random Salt, held with M and released only with it:
	// without r the commitment tests no guess.
	CommitmentSalted = 2
)

// SaltSize is the length of r in bytes: as long as the digest, so that
// guessing r is no easier than finding a preimage.
const SaltSize = 32

// A Salt is the r of H(L,r,M).
type Salt [SaltSize]byte

// NewSalt draws a salt from crypto/rand.
func NewSalt() (Salt, error) {
	var s Salt
	if _, err := rand.Read(s[:]); err != nil {
		return s, fmt.Errorf("drawing a salt: %w", err)
	}
	return s, nil
}

// String is the salt's one spelling: 64 lower-case hex digits.
func (s Salt) String() string { return hex.EncodeToString(s[:]) }

// ParseSalt accepts only what String writes, so that one salt has one
// spelling in signed records.
func ParseSalt(s string) (Salt, error) {
	var salt Salt
	if len(s) != 2*SaltSize {
		return salt, fmt.Errorf("salt %q: want %d hex digits, have %d", truncateForError(s), 2*SaltSize, len(s))
	}
	if _, err := hex.Decode(salt[:], []byte(s)); err != nil {
		return salt, fmt.Errorf("salt %q: %w", truncateForError(s), err)
	}
	if salt.String() != s {
		return salt, fmt.Errorf("salt %q: hex digits must be lower case", truncateForError(s))
	}
	return salt, nil
}

// ItemHash computes the unsalted H(L,M) = SHA-256(len(L) as 4-byte
// big-endian ‖ L ‖ M) of items posted before commitments were salted
// (CommitmentUnsalted). New items use SaltedItemHash.
func ItemHash(label string, m []byte) [32]byte {
	h := sha256.New()
	writeField(h, label)
	h.Write(m)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// ItemHashReader is ItemHash over a message read from r.
func ItemHashReader(label string, r io.Reader) ([32]byte, error) {
	return hashReader(label, nil, r)
}

// SaltedItemHash computes H(L,r,M) = SHA-256(len(L) ‖ L ‖ len(r) ‖ r ‖ M),
// each length a 4-byte big-endian integer, L in ASCII, r the 32 bytes of
// the salt (len(r) is therefore always 32): CommitmentSalted. The layout
// extends ItemHash's by one length-prefixed field, so a salted commitment
// is never mistaken for an unsalted one: the COP names the version.
func SaltedItemHash(label string, salt Salt, m []byte) [32]byte {
	h := sha256.New()
	writeField(h, label)
	writeField(h, string(salt[:]))
	h.Write(m)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// SaltedItemHashReader is SaltedItemHash over a message read from r.
func SaltedItemHashReader(label string, salt Salt, r io.Reader) ([32]byte, error) {
	return hashReader(label, &salt, r)
}

// CommitmentReader computes an item's commitment of the given version
// over the message read from r: the unsalted H(L,M) (salt must be nil) or
// the salted H(L,r,M) (salt required). Verifiers call this one function,
// so that both versions are checked by the same rule.
func CommitmentReader(version int, label string, salt *Salt, r io.Reader) ([32]byte, error) {
	switch {
	case version == CommitmentUnsalted && salt == nil:
		return hashReader(label, nil, r)
	case version == CommitmentUnsalted:
		return [32]byte{}, fmt.Errorf("an unsalted H(L,M) takes no salt")
	case version == CommitmentSalted && salt == nil:
		return [32]byte{}, fmt.Errorf("a salted H(L,r,M) needs its salt r")
	case version == CommitmentSalted:
		return hashReader(label, salt, r)
	}
	return [32]byte{}, fmt.Errorf("unknown commitment version %d", version)
}

func hashReader(label string, salt *Salt, r io.Reader) ([32]byte, error) {
	h := sha256.New()
	writeField(h, label)
	if salt != nil {
		writeField(h, string(salt[:]))
	}
	var sum [32]byte
	if _, err := io.Copy(h, r); err != nil {
		return sum, fmt.Errorf("hashing message: %w", err)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// CommitmentName is how text names a commitment of the version.
func CommitmentName(version int) string {
	if version == CommitmentSalted {
		return "H(L,r,M)"
	}
	return "H(L,M)"
}

// writeField writes len(s) as a 4-byte big-endian integer, then s.
func writeField(w io.Writer, s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	w.Write(n[:])
	io.WriteString(w, s)
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
