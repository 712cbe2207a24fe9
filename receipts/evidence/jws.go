package evidence

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// jwsHeader is the protected header every JWS we accept has, and no more.
type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// readHeader decodes a compact JWS's protected header strictly: only alg,
// kid and typ, alg EdDSA, typ as wanted. A header parameter we do not know
// (crit, b64, jwk, x5c...) could change what the signature means, so it is
// refused rather than ignored.
func readHeader(compact, wantTyp string) (jwsHeader, error) {
	head, _, ok := strings.Cut(compact, ".")
	if !ok {
		return jwsHeader{}, errors.New("not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return jwsHeader{}, fmt.Errorf("protected header: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return jwsHeader{}, fmt.Errorf("protected header: %w", err)
	}
	for name := range fields {
		if name != "alg" && name != "kid" && name != "typ" {
			return jwsHeader{}, fmt.Errorf("protected header has unexpected parameter %q", name)
		}
	}
	var h jwsHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return jwsHeader{}, fmt.Errorf("protected header: %w", err)
	}
	if h.Alg != string(jose.EdDSA) {
		return jwsHeader{}, fmt.Errorf("protected header alg %q, want %q", h.Alg, jose.EdDSA)
	}
	if h.Typ != wantTyp {
		return jwsHeader{}, fmt.Errorf("protected header typ %q, want %q", h.Typ, wantTyp)
	}
	if h.Kid == "" {
		return jwsHeader{}, errors.New("protected header has no kid")
	}
	return h, nil
}

// openJWS checks a compact JWS's header, picks the key its kid names from
// keys, verifies the EdDSA signature and returns the header and payload.
func openJWS(compact, wantTyp string, keys map[string]ed25519.PublicKey) (jwsHeader, []byte, error) {
	h, err := readHeader(compact, wantTyp)
	if err != nil {
		return h, nil, err
	}
	pub, ok := keys[h.Kid]
	if !ok {
		return h, nil, fmt.Errorf("signed by unknown key %q", h.Kid)
	}
	obj, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return h, nil, fmt.Errorf("parsing JWS: %w", err)
	}
	payload, err := obj.Verify(pub)
	if err != nil {
		return h, nil, fmt.Errorf("signature by key %q does not verify: %w", h.Kid, err)
	}
	return h, payload, nil
}

// checkStrictEncoding insists that each part of a compact JWS is in the
// one base64url encoding a signer writes (no stray bits in the last
// character). go-jose's decoder ignores such bits, so without this several
// strings carry the same signature. Records need no such check: each is
// named by the SHA-256 of its exact bytes (the next prev, the head's
// last), so another spelling of one breaks the chain. Nothing names a
// head's bytes, so a head gets the check instead.
func checkStrictEncoding(compact string) error {
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	for i, p := range parts {
		if _, err := base64.RawURLEncoding.Strict().DecodeString(p); err != nil {
			return fmt.Errorf("JWS part %d is not strict base64url: %w", i+1, err)
		}
	}
	return nil
}

// payloadWithoutVerification decodes the payload of a compact JWS this
// package wrote and stored itself; it is for reading the log back, never
// for checking evidence handed in from outside.
func payloadWithoutVerification(compact string) ([]byte, error) {
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("JWS payload: %w", err)
	}
	return payload, nil
}

// OpenRecord verifies one record against the gateway's key and decodes it.
func OpenRecord(compact string, gatewayKey ed25519.PublicKey) (Record, error) {
	kid, err := KeyID(gatewayKey)
	if err != nil {
		return Record{}, err
	}
	_, payload, err := openJWS(compact, RecordJWSType, map[string]ed25519.PublicKey{kid: gatewayKey})
	if err != nil {
		return Record{}, err
	}
	return parsePayload(payload)
}
