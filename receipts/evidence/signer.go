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
	jose    jose.Signer // signs records: typ RecordJWSType
	head    jose.Signer // signs bundle heads: typ HeadJWSType
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
	// One key, two signers: the typ header sets a record and a bundle
	// head apart, so neither can be passed off as the other.
	js, err := newJOSESigner(key, kid, RecordJWSType)
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	hs, err := newJOSESigner(key, kid, HeadJWSType)
	if err != nil {
		return nil, fmt.Errorf("new signer: %w", err)
	}
	return &Signer{gateway: gateway, key: key, kid: kid, jose: js, head: hs}, nil
}

func newJOSESigner(key ed25519.PrivateKey, kid, typ string) (jose.Signer, error) {
	return jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
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
	compact, err := signCompact(s.jose, payload)
	if err != nil {
		return "", fmt.Errorf("signing record: %w", err)
	}
	return compact, nil
}

// signHead signs a bundle head's canonical payload as a compact JWS.
func (s *Signer) signHead(h BundleHead) (string, error) {
	payload, err := canonicalHead(h)
	if err != nil {
		return "", fmt.Errorf("bundle head: %w", err)
	}
	compact, err := signCompact(s.head, payload)
	if err != nil {
		return "", fmt.Errorf("signing bundle head: %w", err)
	}
	return compact, nil
}

func signCompact(js jose.Signer, payload []byte) (string, error) {
	obj, err := js.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}
