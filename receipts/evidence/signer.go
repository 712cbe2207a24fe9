package evidence

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// RecordJWSType is the "typ" header of every evidence record.
const RecordJWSType = "certmail-evidence+jws"

// Signer is the gateway P's signing identity: its name, as records name it,
// and its Ed25519 key.
type Signer struct {
	gateway string
	key     ed25519.PrivateKey
	kid     string
	jose    jose.Signer
}

// NewSigner returns a Signer for gateway P with key. The JWS key id is the
// RFC 7638 thumbprint of the public key, so a verifier can tell which of a
// gateway's keys signed without trusting anything but the key itself.
func NewSigner(gateway string, key ed25519.PrivateKey) (*Signer, error) {
	if gateway == "" {
		return nil, errors.New("new signer: empty gateway name")
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("new signer: Ed25519 private key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	pub := key.Public().(ed25519.PublicKey)
	kid, err := KeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	js, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(RecordJWSType),
	)
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	return &Signer{gateway: gateway, key: key, kid: kid, jose: js}, nil
}

// Gateway is P's name as the records carry it.
func (s *Signer) Gateway() string { return s.gateway }

// Public is the key that verifies the records.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID is the records' "kid": the RFC 7638 thumbprint of Public.
func (s *Signer) KeyID() string { return s.kid }

// signRecord signs the record's canonical payload as a compact JWS.
func (s *Signer) signRecord(r Record) (string, error) {
	payload, err := canonicalPayload(r)
	if err != nil {
		return "", err
	}
	obj, err := s.jose.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("signing record: %w", err)
	}
	compact, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("serialising record: %w", err)
	}
	return compact, nil
}
