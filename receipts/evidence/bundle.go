package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"certmail/receipts"

	"certmail/kv"
)

// BundleVersion is the "version" of the bundles this package writes.
// Version 2 added the signed Head; Verify still reads version 1 bundles
// (files written before), but cannot say they are complete.
const BundleVersion = 2

// bundleVersionNoHead is the version of bundles without a Head.
const bundleVersionNoHead = 1

// maxBundleSize bounds what ParseBundle reads; an item's evidence is a few
// dozen records of a few kilobytes each.
const maxBundleSize = 8 << 20

// Bundle is everything needed to check an item's evidence offline: the
// records, proof that each is in the log, a signed checkpoint of the log,
// and the public keys that signed.
type Bundle struct {
	Version int    `json:"version"`
	Label   string `json:"label"`
	Hash    string `json:"hash"`    // the commitment H(L,r,M) (or H(L,M)), "sha256:<hex>"
	Gateway string `json:"gateway"` // P

	// GatewayKeys are P's record-signing keys; each record's kid names one.
	GatewayKeys []JWK `json:"gateway_keys"`
	// NoteVerifierKey verifies Checkpoint; its key must be a gateway key.
	NoteVerifierKey string `json:"note_verifier_key"`
	// Parties are the recipient's and alternates' keys, which sign CODs and
	// refusals.
	Parties []PartyKey `json:"parties"`

	// Records are the item's records in chain order.
	Records []BundleRecord `json:"records"`
	// Checkpoint is a signed note (C2SP tlog-checkpoint) of a tree that
	// holds every record.
	Checkpoint string `json:"checkpoint"`
	// Head is the gateway's signed BundleHead (compact JWS, typ
	// HeadJWSType): that Records are all the item's records as of its
	// issued_at, so a bundle cut short is caught. Version 2 and later.
	Head string `json:"head,omitempty"`
}

// BundleRecord is one record and the proof that it is in the tree of the
// bundle's checkpoint.
type BundleRecord struct {
	JWS            string   `json:"jws"`
	LeafIndex      uint64   `json:"leaf_index"`
	InclusionProof [][]byte `json:"inclusion_proof"` // RFC 6962 path, base64
}

// BuildBundle gathers the evidence of label. parties are the public keys
// of whoever may have signed a COD or refusal for it (the recipient, and
// alternates); the bundle carries them so it verifies offline.
//
// The proofs are against the newest stored checkpoint if it covers all the
// item's records; otherwise BuildBundle publishes a new checkpoint, which
// writes to kv.
func (l *Log) BuildBundle(kv kv.Records, label string, parties ...PartyKey) (*Bundle, error) {
	entries, err := Records(kv, label)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("bundle: no records for label %q", label)
	}
	first, err := entries[0].Record()
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	cp, head, err := l.coveringCheckpoint(kv, entries[len(entries)-1].Index+1)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	gatewayKey, err := NewJWK(l.signer.Public())
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	b := &Bundle{
		Version:         BundleVersion,
		Label:           label,
		Hash:            receipts.FormatHash(first.Hash),
		Gateway:         l.signer.gateway,
		GatewayKeys:     []JWK{gatewayKey},
		NoteVerifierKey: l.vkey,
		Parties:         append([]PartyKey{}, parties...),
		Checkpoint:      string(cp),
	}
	for _, e := range entries {
		p, err := InclusionProof(kv, e.Index, head.Size)
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		b.Records = append(b.Records, BundleRecord{JWS: e.JWS, LeafIndex: e.Index, InclusionProof: p})
	}
	// The records were read in this transaction, so as of now they are
	// all the item has: that is what the head signs.
	b.Head, err = l.signer.signHead(BundleHead{
		Gateway:  l.signer.gateway,
		Label:    label,
		Hash:     first.Hash,
		Records:  uint64(len(entries)),
		Last:     RecordDigest(entries[len(entries)-1].JWS),
		TreeSize: head.Size,
		IssuedAt: l.now(),
	})
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return b, nil
}

// coveringCheckpoint returns a stored checkpoint of at least minSize leaves,
// publishing one if need be.
func (l *Log) coveringCheckpoint(kv kv.Records, minSize uint64) ([]byte, TreeHead, error) {
	cp, found, err := LatestCheckpoint(kv)
	if err != nil {
		return nil, TreeHead{}, err
	}
	if found {
		head, err := ParseCheckpoint(cp, l.vkey)
		if err != nil {
			return nil, TreeHead{}, fmt.Errorf("stored checkpoint: %w", err)
		}
		if head.Size >= minSize {
			return cp, head, nil
		}
	}
	if cp, err = l.Checkpoint(kv); err != nil {
		return nil, TreeHead{}, err
	}
	head, err := ParseCheckpoint(cp, l.vkey)
	if err != nil {
		return nil, TreeHead{}, fmt.Errorf("new checkpoint: %w", err)
	}
	return cp, head, nil
}

// Marshal renders the bundle as indented JSON, for a file a person may
// read.
func (b *Bundle) Marshal() ([]byte, error) {
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding bundle: %w", err)
	}
	return append(out, '\n'), nil
}

// ParseBundle decodes a bundle; it does not verify it (see Verify). Unknown
// fields are refused: a field this verifier does not know might be one the
// writer meant to be checked.
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > maxBundleSize {
		return nil, fmt.Errorf("bundle has %d bytes, more than %d", len(data), maxBundleSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("decoding bundle: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding bundle: data after the bundle")
	}
	return &b, nil
}
