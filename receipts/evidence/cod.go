package evidence

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"certmail/receipts"
)

// CODJWSType is the "typ" header of a COD or refusal.
const CODJWSType = "certmail-cod+jws"

// codClaims is the payload of a COD or refusal, signed by the recipient B
// (receipts defines and writes it; this is the part a verifier checks).
type codClaims struct {
	V         int    `json:"v"`
	Type      string `json:"type"` // "cod" or "refusal"
	Gateway   string `json:"gateway"`
	Label     string `json:"label"`
	Hash      string `json:"hash"`
	Recipient string `json:"recipient"`
	Custody   string `json:"custody"`
	SignedAt  string `json:"signed_at"`
}

// party is a parsed PartyKey.
type party struct {
	name string
	key  ed25519.PublicKey
}

// checkCOD verifies the COD or refusal that record r carries: B's EdDSA
// signature by a key the bundle lists, that it acknowledges this item at
// this gateway, as the party the record names as signer, and that it was
// signed between the item's posting and its deadline (c, the chain so
// far, knows both) and not after the gateway recorded it.
func checkCOD(r Record, ch *chain, parties map[string]party) (codClaims, error) {
	want := "cod"
	if r.Type == ConsignmentRejection {
		want = "refusal"
	}
	keys := make(map[string]ed25519.PublicKey, len(parties))
	for kid, p := range parties {
		keys[kid] = p.key
	}
	h, payload, err := openJWS(r.Data.COD, CODJWSType, keys)
	if err != nil {
		return codClaims{}, fmt.Errorf("%s: %w", want, err)
	}
	var c codClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return codClaims{}, fmt.Errorf("%s payload: %w", want, err)
	}
	signer := parties[h.Kid].name
	switch {
	case c.V != 1:
		return c, fmt.Errorf("%s version %d, want 1", want, c.V)
	case c.Type != want:
		return c, fmt.Errorf("%s has type %q", want, c.Type)
	case c.Gateway != r.Gateway:
		return c, fmt.Errorf("%s names gateway %q, not %q", want, c.Gateway, r.Gateway)
	case c.Label != r.Label:
		return c, fmt.Errorf("%s names label %q, not %q", want, c.Label, r.Label)
	case c.Hash != receipts.FormatHash(r.Hash):
		return c, fmt.Errorf("%s names hash %s, not the item's %s", want, c.Hash, receipts.FormatHash(r.Hash))
	case c.Recipient != signer:
		return c, fmt.Errorf("%s names recipient %q but is signed by %q's key", want, c.Recipient, signer)
	case c.Recipient != r.Data.Signer:
		return c, fmt.Errorf("%s is signed by %q, but the record says %q", want, c.Recipient, r.Data.Signer)
	case r.Data.Custody != "" && c.Custody != r.Data.Custody:
		return c, fmt.Errorf("%s custody %q, but the record says %q", want, c.Custody, r.Data.Custody)
	}
	signedAt, err := time.Parse(time.RFC3339, c.SignedAt)
	if err != nil {
		return c, fmt.Errorf("%s signed_at: %w", want, err)
	}
	if err := receipts.CheckSignedAt(signedAt, ch.posted, ch.deadline, r.Time); err != nil {
		return c, fmt.Errorf("%s: %w", want, err)
	}
	return c, nil
}
