package evidence

import (
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// KeyID is the RFC 7638 thumbprint (SHA-256, base64url) of an Ed25519
// public key: the "kid" of the JWS it signs.
func KeyID(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("Ed25519 public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// JWK is an Ed25519 public key as an RFC 8037 JSON Web Key. Bundles spell
// keys out in this narrow form, rather than as any JWK, so that a verifier
// has exactly one kind of key to parse.
type JWK struct {
	Kty string `json:"kty"` // "OKP"
	Crv string `json:"crv"` // "Ed25519"
	X   string `json:"x"`   // the public key, base64url
	Kid string `json:"kid"` // RFC 7638 thumbprint
}

// NewJWK renders pub as a JWK with its thumbprint as kid.
func NewJWK(pub ed25519.PublicKey) (JWK, error) {
	kid, err := KeyID(pub)
	if err != nil {
		return JWK{}, err
	}
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: kid}, nil
}

// PublicKey checks the JWK (type, curve, size, and that kid is the key's
// thumbprint, so a kid cannot point at a key it does not name) and returns
// the key.
func (j JWK) PublicKey() (ed25519.PublicKey, error) {
	if j.Kty != "OKP" || j.Crv != "Ed25519" {
		return nil, fmt.Errorf("JWK %q: kty %q crv %q, want OKP Ed25519", j.Kid, j.Kty, j.Crv)
	}
	raw, err := base64.RawURLEncoding.DecodeString(j.X)
	if err != nil {
		return nil, fmt.Errorf("JWK %q: x: %w", j.Kid, err)
	}
	pub := ed25519.PublicKey(raw)
	kid, err := KeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("JWK %q: %w", j.Kid, err)
	}
	if kid != j.Kid {
		return nil, fmt.Errorf("JWK %q: kid is not the key's thumbprint %q", j.Kid, kid)
	}
	return pub, nil
}

// PartyKey is a recipient's (or an alternate's) public key with the account
// name that CODs signed by it carry as "recipient".
type PartyKey struct {
	Name string `json:"name"`
	JWK  JWK    `json:"jwk"`
}

// NewPartyKey names pub as the key of account name.
func NewPartyKey(name string, pub ed25519.PublicKey) (PartyKey, error) {
	if name == "" {
		return PartyKey{}, errors.New("party key: empty name")
	}
	jwk, err := NewJWK(pub)
	if err != nil {
		return PartyKey{}, fmt.Errorf("party key for %q: %w", name, err)
	}
	return PartyKey{Name: name, JWK: jwk}, nil
}
