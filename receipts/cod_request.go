package receipts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// CODRequestVersion is a CODRequest's "v".
const CODRequestVersion = 1

// maxCODRequestSize bounds a cod-request.json read from a mail attachment.
const maxCODRequestSize = 8 << 10

// CODRequest is the small JSON file attached to a stub (cod-request.json):
// everything a signing tool needs to make the COD, so that B signs what
// the gateway asked for and nothing the tool had to guess.
type CODRequest struct {
	V         int    `json:"v"`
	Gateway   string `json:"gateway"`   // P
	Label     string `json:"label"`     // L
	Hash      string `json:"hash"`      // the commitment H(L,r,M) (or H(L,M)), "sha256:<hex>"
	Recipient string `json:"recipient"` // B
	Deadline  string `json:"deadline"`  // T, RFC 3339 UTC; "" when there is none
}

// NewCODRequest fills in a request for one item.
func NewCODRequest(gateway, label string, hash [32]byte, recipient string, deadline time.Time) CODRequest {
	r := CODRequest{
		V:         CODRequestVersion,
		Gateway:   gateway,
		Label:     label,
		Hash:      FormatHash(hash),
		Recipient: recipient,
	}
	if !deadline.IsZero() {
		r.Deadline = deadline.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	return r
}

// ParseCODRequest reads a cod-request.json strictly: unknown fields, a
// wrong version and values a COD could not carry are errors.
func ParseCODRequest(data []byte) (CODRequest, error) {
	var r CODRequest
	if len(data) > maxCODRequestSize {
		return r, fmt.Errorf("COD request: %d bytes is too large", len(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return CODRequest{}, fmt.Errorf("COD request: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return CODRequest{}, fmt.Errorf("COD request: data after the JSON object")
	}
	if err := r.validate(); err != nil {
		return CODRequest{}, fmt.Errorf("COD request: %w", err)
	}
	return r, nil
}

func (r CODRequest) validate() error {
	if r.V != CODRequestVersion {
		return fmt.Errorf("v is %d, want %d", r.V, CODRequestVersion)
	}
	if err := checkName("gateway", r.Gateway, 255); err != nil {
		return err
	}
	if err := checkLabel(r.Label); err != nil {
		return err
	}
	if err := checkCanonicalHash(r.Hash); err != nil {
		return err
	}
	if err := checkName("recipient", r.Recipient, 320); err != nil {
		return err
	}
	if r.Deadline != "" {
		if _, err := time.Parse(time.RFC3339, r.Deadline); err != nil {
			return fmt.Errorf("deadline %q is not RFC 3339", truncateForError(r.Deadline))
		}
	}
	return nil
}

// Claims returns the COD claims that answer this request with decision,
// signed now under the given custody.
func (r CODRequest) Claims(decision Decision, custody Custody, now time.Time) CODClaims {
	return CODClaims{
		V:         CODVersion,
		Type:      decision,
		Gateway:   r.Gateway,
		Label:     r.Label,
		Hash:      r.Hash,
		Recipient: r.Recipient,
		Custody:   custody,
		SignedAt:  now.UTC().Truncate(time.Second),
	}
}
