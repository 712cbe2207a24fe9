package receipts

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/go-jose/go-jose/v4"
)

// PEM block types: PKCS #8 for private keys and PKIX for public keys, the
// forms OpenSSL and every JOSE library read.
const (
	pemPrivateKey = "PRIVATE KEY"
	pemPublicKey  = "PUBLIC KEY"
)

// maxPEMSize bounds what the PEM parsers accept. An Ed25519 key in PEM is
// about 120 bytes; anything much larger is not one of ours.
const maxPEMSize = 16 << 10

// GenerateKey returns a new Ed25519 private key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating Ed25519 key: %w", err)
	}
	return priv, nil
}

// MarshalPrivateKeyPEM encodes priv as a PKCS #8 "PRIVATE KEY" PEM block.
func MarshalPrivateKeyPEM(priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("marshal private key: Ed25519 private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParsePrivateKeyPEM reads one PKCS #8 "PRIVATE KEY" PEM block holding an
// Ed25519 key, and nothing else.
func ParsePrivateKeyPEM(data []byte) (ed25519.PrivateKey, error) {
	der, err := decodeSinglePEM(data, pemPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse private key: not a PKCS #8 key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse private key: have a %T, want an Ed25519 key", key)
	}
	return priv, nil
}

// MarshalPublicKeyPEM encodes pub as a PKIX "PUBLIC KEY" PEM block.
func MarshalPublicKeyPEM(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("marshal public key: Ed25519 public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// ParsePublicKeyPEM reads one PKIX "PUBLIC KEY" PEM block holding an
// Ed25519 key, and nothing else. Recipients register their keys this way,
// so the input is untrusted.
func ParsePublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	der, err := decodeSinglePEM(data, pemPublicKey)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse public key: not a PKIX public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse public key: have a %T, want an Ed25519 key", key)
	}
	return pub, nil
}

// decodeSinglePEM returns the DER bytes of the only PEM block in data,
// which must have the wanted type. Trailing blocks are refused rather than
// ignored, so a file cannot say one thing to us and another to OpenSSL.
func decodeSinglePEM(data []byte, wantType string) ([]byte, error) {
	if len(data) > maxPEMSize {
		return nil, fmt.Errorf("%d bytes is too large for an Ed25519 key in PEM", len(data))
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block found (want %q)", wantType)
	}
	if block.Type != wantType {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, wantType)
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("PEM block has headers (encrypted keys are not supported)")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the PEM block")
	}
	return block.Bytes, nil
}

// KeyID names a public key by its RFC 7638 JWK thumbprint (SHA-256,
// base64url without padding), the "kid" of every JWS certmail makes. Anyone
// can recompute it from the key alone.
func KeyID(pub ed25519.PublicKey) string {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		// Only a key of the wrong length gets here; give it an ID that
		// matches no real key rather than panic.
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// PublicJWK returns pub as a JWK with its kid set, ready to publish.
func PublicJWK(pub ed25519.PublicKey) jose.JSONWebKey {
	return jose.JSONWebKey{
		Key:       pub,
		KeyID:     KeyID(pub),
		Algorithm: string(jose.EdDSA),
		Use:       "sig",
	}
}

// LoadOrCreateGatewayKey reads the gateway's signing key from path, or, if
// there is no file, generates one and writes it there with mode 0600. A key
// file readable by group or others is refused: it signs evidence.
func LoadOrCreateGatewayKey(path string) (ed25519.PrivateKey, error) {
	priv, err := loadPrivateKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return priv, err
	}
	priv, err = GenerateKey()
	if err != nil {
		return nil, err
	}
	data, err := MarshalPrivateKeyPEM(priv)
	if err != nil {
		return nil, err
	}
	created, err := writeNewFile(path, data)
	if err != nil {
		return nil, fmt.Errorf("gateway key %s: %w", path, err)
	}
	if !created {
		// Another process created it first: use theirs, so there is only
		// ever one gateway key.
		return loadPrivateKeyFile(path)
	}
	return priv, nil
}

func loadPrivateKeyFile(path string) (ed25519.PrivateKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("gateway key: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("gateway key %s: mode %#o lets others read it; chmod 600 it", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway key: %w", err)
	}
	priv, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("gateway key %s: %w", path, err)
	}
	return priv, nil
}

// writeNewFile writes data to path only if path does not exist yet. It
// writes a temporary file and links it into place, so that a crash never
// leaves a half-written key behind, and reports created=false when path
// appeared in the meantime.
func writeNewFile(path string, data []byte) (created bool, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
