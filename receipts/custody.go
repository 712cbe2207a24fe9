package receipts

import (
	"bytes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// A sealed key is the Ed25519 key the gateway holds for a recipient B
// ("gateway-held" custody), encrypted under a key derived from B's
// password. The store keeps only the sealed form, so the gateway can sign
// for B only while B's password is at hand: inside B's authenticated
// session. The blob is JSON so that it can be read by eye and its
// parameters can change without a migration.

// ErrWrongPassword is returned by UnsealKey when the password does not open
// the sealed key. AEAD cannot tell a wrong password from an altered blob,
// so it means either.
var ErrWrongPassword = errors.New("wrong password, or the sealed key was altered")

// ErrMalformedSealedKey is wrapped by every error about a blob that is not
// a sealed key at all.
var ErrMalformedSealedKey = errors.New("malformed sealed key")

const (
	sealedVersion = 1
	sealedKDF     = "argon2id"
	sealedCipher  = "xchacha20poly1305"
	sealedSaltLen = 16
	// maxSealedSize bounds the blob before it is parsed; ours are ~300 bytes.
	maxSealedSize = 4 << 10
)

// KDFParams are argon2id's cost parameters.
type KDFParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32
	Threads   uint8
}

// DefaultKDFParams are OWASP's minimum for argon2id (19 MiB, 1 pass, and
// two lanes). Unsealing happens at login, so it must stay cheap; the
// password database is not the only thing between an attacker and the key,
// since the blob lives in the store, not in a leaked hash list.
var DefaultKDFParams = KDFParams{Time: 1, MemoryKiB: 19 * 1024, Threads: 2}

// Limits on parameters read back from a blob, so a damaged or hostile blob
// cannot make a login allocate gigabytes or spin for minutes.
const (
	minKDFMemoryKiB = 8 * 1024
	maxKDFMemoryKiB = 1 << 20 // 1 GiB
	maxKDFTime      = 20
)

func (p KDFParams) check(maxMemoryKiB uint32) error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d out of range [1, %d]", p.Time, maxKDFTime)
	case p.MemoryKiB < minKDFMemoryKiB || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB out of range [%d, %d]", p.MemoryKiB, minKDFMemoryKiB, maxMemoryKiB)
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	}
	return nil
}

// sealedKey is the blob's JSON form. Binary fields are base64url without
// padding.
type sealedKey struct {
	V          int    `json:"v"`
	KDF        string `json:"kdf"`
	Time       uint32 `json:"time"`
	MemoryKiB  uint32 `json:"memory_kib"`
	Threads    uint8  `json:"threads"`
	Salt       string `json:"salt"`
	Cipher     string `json:"cipher"`
	Nonce      string `json:"nonce"`
	PublicKey  string `json:"public_key"`
	Ciphertext string `json:"ciphertext"`
}

// aad binds every parameter and the public key to the ciphertext, so that
// none can be changed without UnsealKey noticing.
func (s *sealedKey) aad() []byte {
	return fmt.Appendf(nil, "certmail sealed key v=%d kdf=%s t=%d m=%d p=%d cipher=%s pub=%s",
		s.V, s.KDF, s.Time, s.MemoryKiB, s.Threads, s.Cipher, s.PublicKey)
}

// SealKey encrypts priv under password with DefaultKDFParams.
func SealKey(priv ed25519.PrivateKey, password []byte) ([]byte, error) {
	return SealKeyWithParams(priv, password, DefaultKDFParams)
}

// SealKeyWithParams encrypts priv under password with the given argon2id
// cost, recorded in the blob.
func SealKeyWithParams(priv ed25519.PrivateKey, password []byte, params KDFParams) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("seal key: Ed25519 private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	if len(password) == 0 {
		return nil, errors.New("seal key: empty password")
	}
	if err := params.check(maxKDFMemoryKiB); err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	salt := make([]byte, sealedSaltLen)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := io.ReadFull(rand.Reader, salt); err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	s := sealedKey{
		V:         sealedVersion,
		KDF:       sealedKDF,
		Time:      params.Time,
		MemoryKiB: params.MemoryKiB,
		Threads:   params.Threads,
		Salt:      b64(salt),
		Cipher:    sealedCipher,
		Nonce:     b64(nonce),
		PublicKey: b64(priv.Public().(ed25519.PublicKey)),
	}
	aead, err := sealingAEAD(password, salt, params)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	s.Ciphertext = b64(aead.Seal(nil, nonce, priv.Seed(), s.aad()))
	out, err := json.Marshal(&s)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return out, nil
}

// UnsealKey opens a blob made by SealKey. It returns ErrWrongPassword when
// the password does not open it, and an error wrapping
// ErrMalformedSealedKey when the blob is not a sealed key.
func UnsealKey(sealed, password []byte) (ed25519.PrivateKey, error) {
	return unsealKey(sealed, password, maxKDFMemoryKiB)
}

// unsealKey takes the memory ceiling as a parameter so that the fuzz test
// can keep each run cheap.
func unsealKey(sealed, password []byte, maxMemoryKiB uint32) (ed25519.PrivateKey, error) {
	s, parts, err := parseSealedKey(sealed, maxMemoryKiB)
	if err != nil {
		return nil, err
	}
	aead, err := sealingAEAD(password, parts.salt, s.params())
	if err != nil {
		return nil, fmt.Errorf("unseal key: %w", err)
	}
	seed, err := aead.Open(nil, parts.nonce, parts.ciphertext, s.aad())
	if err != nil {
		return nil, ErrWrongPassword
	}
	priv := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	// The public key is in the AAD, so this can only fail if the blob
	// was sealed wrongly; check anyway, since a mismatch would make the
	// gateway sign under a key the world does not know for B.
	if subtle.ConstantTimeCompare(priv.Public().(ed25519.PublicKey), parts.publicKey) != 1 {
		return nil, fmt.Errorf("%w: key does not match its recorded public key", ErrMalformedSealedKey)
	}
	return priv, nil
}

// SealedPublicKey returns the public key recorded in a sealed blob without
// unsealing it, e.g. to verify CODs the gateway signed for B. It is not
// authenticated until UnsealKey succeeds; rely on the key registry for
// verification.
func SealedPublicKey(sealed []byte) (ed25519.PublicKey, error) {
	_, parts, err := parseSealedKey(sealed, maxKDFMemoryKiB)
	if err != nil {
		return nil, err
	}
	return parts.publicKey, nil
}

// ResealKey re-encrypts a sealed key under newPassword, with fresh salt and
// nonce and the current DefaultKDFParams (so a password change also
// upgrades old parameters). It fails with ErrWrongPassword when
// oldPassword does not open it.
func ResealKey(sealed, oldPassword, newPassword []byte) ([]byte, error) {
	priv, err := UnsealKey(sealed, oldPassword)
	if err != nil {
		return nil, fmt.Errorf("reseal key: %w", err)
	}
	defer clear(priv)
	out, err := SealKey(priv, newPassword)
	if err != nil {
		return nil, fmt.Errorf("reseal key: %w", err)
	}
	return out, nil
}

type sealedParts struct {
	salt, nonce, publicKey, ciphertext []byte
}

func (s *sealedKey) params() KDFParams {
	return KDFParams{Time: s.Time, MemoryKiB: s.MemoryKiB, Threads: s.Threads}
}

func parseSealedKey(sealed []byte, maxMemoryKiB uint32) (*sealedKey, *sealedParts, error) {
	malformed := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformedSealedKey, fmt.Sprintf(format, args...))
	}
	if len(sealed) == 0 {
		return nil, nil, malformed("empty")
	}
	if len(sealed) > maxSealedSize {
		return nil, nil, malformed("%d bytes is too large", len(sealed))
	}
	var s sealedKey
	dec := json.NewDecoder(bytes.NewReader(sealed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, nil, malformed("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, malformed("data after the JSON object")
	}
	if s.V != sealedVersion {
		return nil, nil, malformed("version %d, want %d", s.V, sealedVersion)
	}
	if s.KDF != sealedKDF {
		return nil, nil, malformed("kdf %q, want %q", s.KDF, sealedKDF)
	}
	if s.Cipher != sealedCipher {
		return nil, nil, malformed("cipher %q, want %q", s.Cipher, sealedCipher)
	}
	if err := s.params().check(maxMemoryKiB); err != nil {
		return nil, nil, malformed("%v", err)
	}
	var p sealedParts
	fields := []struct {
		name string
		val  string
		dst  *[]byte
		size int
	}{
		{"salt", s.Salt, &p.salt, sealedSaltLen},
		{"nonce", s.Nonce, &p.nonce, chacha20poly1305.NonceSizeX},
		{"public_key", s.PublicKey, &p.publicKey, ed25519.PublicKeySize},
		{"ciphertext", s.Ciphertext, &p.ciphertext, ed25519.SeedSize + chacha20poly1305.Overhead},
	}
	for _, f := range fields {
		b, err := base64.RawURLEncoding.Strict().DecodeString(f.val)
		if err != nil {
			return nil, nil, malformed("%s: %v", f.name, err)
		}
		if len(b) != f.size {
			return nil, nil, malformed("%s has %d bytes, want %d", f.name, len(b), f.size)
		}
		*f.dst = b
	}
	return &s, &p, nil
}

func sealingAEAD(password, salt []byte, p KDFParams) (cipher.AEAD, error) {
	key := argon2.IDKey(password, salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize)
	defer clear(key)
	return chacha20poly1305.NewX(key)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
