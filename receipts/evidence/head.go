package evidence

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"certmail/receipts"
)

// HeadJWSType is the "typ" header of a bundle head. It differs from
// RecordJWSType, and each is checked where the other is not accepted, so a
// head can never pass for a record of the log nor a record for a head,
// though the same gateway key signs both.
const HeadJWSType = "certmail-head+jws"

// BundleHead is the gateway's signed statement that an item's records, as
// of IssuedAt, are exactly Records many, ending with the record whose
// digest is Last. The hash chain protects what comes before a record but
// not what comes after it, so without the head a bundle cut short (its
// last records dropped) verifies as an earlier state of the item: one
// that stops before a refusal, say, or before ContentHandover.
//
// A head is true as of IssuedAt and the log size TreeSize, and no later:
// an older bundle with its older head and its shorter record set still
// verifies, as complete as of that time. That is inherent (the gateway
// cannot sign what had not yet happened), which is why the Verdict shows
// IssuedAt; a newer bundle, or a newer checkpoint and the item's label
// index, tells whether anything followed.
type BundleHead struct {
	Gateway  string    // P
	Label    string    // L
	Hash     [32]byte  // the item's commitment
	Records  uint64    // how many records the item had
	Last     string    // RecordDigest of the last of them, as the next prev would name it
	TreeSize uint64    // the size of the checkpoint the bundle's proofs are against
	IssuedAt time.Time // when the gateway signed this
}

// headPayload is the signed JSON, field for field.
type headPayload struct {
	Gateway  string `json:"gateway"`
	Label    string `json:"label"`
	Hash     string `json:"hash"`
	Records  uint64 `json:"records"`
	Last     string `json:"last"`
	TreeSize uint64 `json:"tree_size"`
	IssuedAt string `json:"issued_at"`
}

var headFields = []string{"gateway", "label", "hash", "records", "last", "tree_size", "issued_at"}

// validate checks what a head must carry for its claims to mean anything.
func (h BundleHead) validate() error {
	if h.Gateway == "" {
		return errors.New("no gateway")
	}
	if err := checkLabel(h.Label); err != nil {
		return err
	}
	// The counts must survive RFC 8785, which writes numbers as doubles.
	if h.Records == 0 || h.Records > maxSafeSeq {
		return fmt.Errorf("records %d, want 1 to %d", h.Records, uint64(maxSafeSeq))
	}
	if h.TreeSize < h.Records || h.TreeSize > maxSafeSeq {
		return fmt.Errorf("tree_size %d, want %d to %d", h.TreeSize, h.Records, uint64(maxSafeSeq))
	}
	if _, err := receipts.ParseHash(h.Last); err != nil {
		return fmt.Errorf("last: %w", err)
	}
	if h.IssuedAt.IsZero() {
		return errors.New("no issued_at")
	}
	if y := h.IssuedAt.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("issued_at %s is out of range", h.IssuedAt)
	}
	return nil
}

// canonicalHead renders h as the RFC 8785 JSON that gets signed.
func canonicalHead(h BundleHead) ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	return canonicalJSON(headPayload{
		Gateway:  h.Gateway,
		Label:    h.Label,
		Hash:     receipts.FormatHash(h.Hash),
		Records:  h.Records,
		Last:     h.Last,
		TreeSize: h.TreeSize,
		IssuedAt: h.IssuedAt.UTC().Format(time.RFC3339Nano),
	})
}

// parseHeadPayload decodes a head's signed JSON as strictly as records
// are decoded: canonical form, exactly the known field names, nothing
// else, so every JSON parser reads the same head out of the signed bytes.
func parseHeadPayload(payload []byte) (BundleHead, error) {
	if err := checkCanonical(payload); err != nil {
		return BundleHead{}, err
	}
	if _, err := checkExactFields(payload, headFields); err != nil {
		return BundleHead{}, err
	}
	var p headPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return BundleHead{}, fmt.Errorf("decoding payload: %w", err)
	}
	hash, err := receipts.ParseHash(p.Hash)
	if err != nil {
		return BundleHead{}, fmt.Errorf("payload hash: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, p.IssuedAt)
	if err != nil {
		return BundleHead{}, fmt.Errorf("payload issued_at: %w", err)
	}
	h := BundleHead{Gateway: p.Gateway, Label: p.Label, Hash: hash, Records: p.Records,
		Last: p.Last, TreeSize: p.TreeSize, IssuedAt: t}
	if err := h.validate(); err != nil {
		return BundleHead{}, err
	}
	return h, nil
}

// verifyHead checks the bundle's signed head against what the bundle
// shows: the trusted gateway key signed it, for this item, and it counts
// exactly the bundle's records, ends at its last one, and is tied to its
// checkpoint. Call it after the records verified, so a broken chain is
// reported as such rather than as a count that does not match.
func verifyHead(b *Bundle, hash [32]byte, gatewayKeys map[string]ed25519.PublicKey, tree TreeHead) (BundleHead, error) {
	if b.Head == "" {
		return BundleHead{}, fmt.Errorf("head: a version %d bundle needs the gateway's signed head, and this one has none", b.Version)
	}
	_, payload, err := openJWS(b.Head, HeadJWSType, gatewayKeys)
	if err != nil {
		return BundleHead{}, fmt.Errorf("head: %w", err)
	}
	if err := checkStrictEncoding(b.Head); err != nil {
		return BundleHead{}, fmt.Errorf("head: %w", err)
	}
	h, err := parseHeadPayload(payload)
	if err != nil {
		return BundleHead{}, fmt.Errorf("head: %w", err)
	}
	last := b.Records[len(b.Records)-1]
	switch {
	case h.Gateway != b.Gateway:
		return h, fmt.Errorf("head: signed for gateway %q, the bundle is from %q", h.Gateway, b.Gateway)
	case h.Label != b.Label:
		return h, fmt.Errorf("head: signed for label %q, the bundle is for %q", h.Label, b.Label)
	case h.Hash != hash:
		return h, fmt.Errorf("head: signed for hash %s, the bundle is for %s", receipts.FormatHash(h.Hash), b.Hash)
	case h.Records != uint64(len(b.Records)):
		return h, fmt.Errorf("head: the gateway signed %d records, the bundle has %d", h.Records, len(b.Records))
	case h.Last != RecordDigest(last.JWS):
		return h, fmt.Errorf("head: the gateway signed %s as the last record, the bundle's last record (%d) is %s",
			h.Last, len(b.Records)-1, RecordDigest(last.JWS))
	case h.TreeSize != tree.Size:
		return h, fmt.Errorf("head: signed for log size %d, the bundle's checkpoint has size %d", h.TreeSize, tree.Size)
	}
	return h, nil
}
