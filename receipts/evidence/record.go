package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gowebpki/jcs"

	"certmail/receipts"
)

// RecordVersion is the "v" of the records this package writes and reads.
const RecordVersion = 1

// maxSafeSeq keeps seq within the integers RFC 8785 (IEEE doubles) writes
// exactly, so the canonical form never rounds it.
const maxSafeSeq = 1<<53 - 1

// Record is a decoded evidence record: the Event plus what the log added.
type Record struct {
	Type    EventType
	Gateway string // P
	Label   string
	Hash    [32]byte // the item's commitment, H(L,r,M) or H(L,M)
	Seq     uint64   // position in the item's chain, from 0
	Prev    string   // "sha256:<hex>" of the previous record's JWS, "" for seq 0
	Time    time.Time
	Data    EventData
}

// recordPayload is the signed JSON, field for field.
type recordPayload struct {
	V       int       `json:"v"`
	Type    EventType `json:"type"`
	Gateway string    `json:"gateway"`
	Label   string    `json:"label"`
	Hash    string    `json:"hash"`
	Seq     uint64    `json:"seq"`
	Prev    string    `json:"prev"`
	Time    string    `json:"time"`
	Data    EventData `json:"data"`
}

// RecordDigest is what the next record's prev names: SHA-256 of a record's
// compact JWS bytes, as "sha256:<hex>".
func RecordDigest(jws string) string {
	return receipts.FormatHash(sha256.Sum256([]byte(jws)))
}

// canonicalPayload renders r as the RFC 8785 JSON that gets signed. Times
// are normalised to UTC so that the signed text does not depend on the
// caller's time zone.
func canonicalPayload(r Record) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	data := r.Data
	if !data.Deadline.IsZero() {
		data.Deadline = data.Deadline.UTC()
	}
	return canonicalJSON(recordPayload{
		V:       RecordVersion,
		Type:    r.Type,
		Gateway: r.Gateway,
		Label:   r.Label,
		Hash:    receipts.FormatHash(r.Hash),
		Seq:     r.Seq,
		Prev:    r.Prev,
		Time:    r.Time.UTC().Format(time.RFC3339Nano),
		Data:    data,
	})
}

// canonicalJSON renders a payload (a record's or a bundle head's) as the
// RFC 8785 JSON that gets signed.
func canonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding payload: %w", err)
	}
	canon, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalising payload: %w", err)
	}
	return canon, nil
}

// checkCanonical insists that a signed payload is RFC 8785 canonical JSON,
// so that there is one way to write what was signed (no duplicate keys, no
// alternative spellings of a number or string).
func checkCanonical(payload []byte) error {
	canon, err := jcs.Transform(payload)
	if err != nil {
		return fmt.Errorf("payload is not valid JSON: %w", err)
	}
	if !bytes.Equal(canon, payload) {
		return errors.New("payload is not RFC 8785 canonical JSON")
	}
	return nil
}

// parsePayload decodes a record's signed JSON. It insists on the canonical
// form and on known fields only, so that every JSON parser reads the same
// record out of the signed bytes (no duplicate keys, no ignored extras).
func parsePayload(payload []byte) (Record, error) {
	if err := checkCanonical(payload); err != nil {
		return Record{}, err
	}
	if err := checkFieldNames(payload); err != nil {
		return Record{}, err
	}
	var p recordPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return Record{}, fmt.Errorf("decoding payload: %w", err)
	}
	if p.V != RecordVersion {
		return Record{}, fmt.Errorf("payload version %d, want %d", p.V, RecordVersion)
	}
	hash, err := receipts.ParseHash(p.Hash)
	if err != nil {
		return Record{}, fmt.Errorf("payload hash: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, p.Time)
	if err != nil {
		return Record{}, fmt.Errorf("payload time: %w", err)
	}
	r := Record{Type: p.Type, Gateway: p.Gateway, Label: p.Label, Hash: hash,
		Seq: p.Seq, Prev: p.Prev, Time: t, Data: p.Data}
	if err := r.validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// checkFieldNames insists on the exact field names, because encoding/json
// matches names without regard to case and another parser would not: a
// "Label" must not pass for "label".
func checkFieldNames(payload []byte) error {
	top, err := checkExactFields(payload, []string{"v", "type", "gateway", "label", "hash", "seq", "prev", "time", "data"})
	if err != nil {
		return err
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(top["data"], &data); err != nil {
		return fmt.Errorf("decoding payload data: %w", err)
	}
	for name := range data {
		switch name {
		case "sender", "recipient", "deadline", "cod", "cod_hash", "signer", "custody", "alternate", "actor", "reason", "commitment", "salt":
		default:
			return fmt.Errorf("payload data has unknown field %q", name)
		}
	}
	return nil
}

// checkExactFields insists that the payload is an object with exactly the
// named top-level fields, spelled exactly so, and returns them.
func checkExactFields(payload []byte, names []string) (map[string]json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		return nil, fmt.Errorf("decoding payload: %w", err)
	}
	for _, name := range names {
		if _, ok := top[name]; !ok {
			return nil, fmt.Errorf("payload lacks %q", name)
		}
	}
	if len(top) != len(names) {
		return nil, fmt.Errorf("payload has %d fields, want %d", len(top), len(names))
	}
	return top, nil
}

// validate checks what a record must carry on its own, without its chain.
func (r Record) validate() error {
	if r.Gateway == "" {
		return errors.New("record has no gateway")
	}
	if err := checkLabel(r.Label); err != nil {
		return err
	}
	if r.Seq > maxSafeSeq {
		return fmt.Errorf("seq %d is too large", r.Seq)
	}
	if (r.Seq == 0) != (r.Prev == "") {
		return fmt.Errorf("seq %d with prev %q: only seq 0 has no prev", r.Seq, r.Prev)
	}
	if r.Prev != "" {
		if _, err := receipts.ParseHash(r.Prev); err != nil {
			return fmt.Errorf("prev: %w", err)
		}
	}
	if r.Time.IsZero() {
		return errors.New("record has no time")
	}
	// RFC 3339 cannot write other years, and the record must read back.
	for _, t := range []time.Time{r.Time, r.Data.Deadline} {
		if y := t.UTC().Year(); !t.IsZero() && (y < 1 || y > 9999) {
			return fmt.Errorf("time %s is out of range", t)
		}
	}
	return r.Type.checkData(r.Data)
}

// checkLabel rejects labels the log's key layout cannot hold unambiguously.
func checkLabel(label string) error {
	if label == "" {
		return errors.New("empty label")
	}
	if strings.ContainsRune(label, 0) {
		return fmt.Errorf("label %q contains NUL", label)
	}
	return nil
}

// checkData says which fields each event needs; without them a record would
// not say what a reader needs to know (who, what deadline, which COD).
func (t EventType) checkData(d EventData) error {
	var missing []string
	need := func(ok bool, name string) {
		if !ok {
			missing = append(missing, name)
		}
	}
	switch t {
	case SubmissionAcceptance:
		need(d.Recipient != "", "recipient")
		need(!d.Deadline.IsZero(), "deadline")
	case ConsignmentNotification:
		need(d.Recipient != "", "recipient")
	case ConsignmentAcceptance, ConsignmentRejection:
		need(d.COD != "", "cod")
		need(d.Signer != "", "signer")
	case ContentHandover:
		need(d.CODHash != "", "cod_hash")
		need(d.Signer != "", "signer")
	case AcceptanceRejectionExpiry, ContentConsignmentFailure:
	case Forwarded:
		need(d.Alternate != "", "alternate")
	case OperatorView:
		need(d.Actor != "", "actor")
	case OperatorForward:
		need(d.Actor != "", "actor")
		need(d.Alternate != "", "alternate")
	default:
		return fmt.Errorf("unknown record type %q", t)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s record lacks %s", t, strings.Join(missing, ", "))
	}
	switch d.Custody {
	case "", CustodyGatewayHeld, CustodyRecipientHeld:
	default:
		return fmt.Errorf("%s record: unknown custody %q", t, d.Custody)
	}
	if d.CODHash != "" {
		if _, err := receipts.ParseHash(d.CODHash); err != nil {
			return fmt.Errorf("%s record: cod_hash: %w", t, err)
		}
	}
	switch {
	case d.Commitment != 0 && t != SubmissionAcceptance:
		return fmt.Errorf("%s record: only the %s names the commitment version", t, SubmissionAcceptance)
	case d.Commitment != 0 && d.Commitment != receipts.CommitmentSalted:
		// The unsalted version is spelled by leaving the field out.
		return fmt.Errorf("%s record: commitment version %d, want %d or none", t, d.Commitment, receipts.CommitmentSalted)
	}
	if d.Salt != "" {
		if t != ContentHandover && t != AcceptanceRejectionExpiry {
			return fmt.Errorf("%s record: a salt is released only with the message (%s, or %s on deemed delivery)",
				t, ContentHandover, AcceptanceRejectionExpiry)
		}
		if _, err := receipts.ParseSalt(d.Salt); err != nil {
			return fmt.Errorf("%s record: %w", t, err)
		}
	}
	return nil
}

// commitment is the version of the item's hash that a COP names.
func (d EventData) commitment() int {
	if d.Commitment == 0 {
		return receipts.CommitmentUnsalted
	}
	return d.Commitment
}
