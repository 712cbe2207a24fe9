package certified

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

// ReleaseCheck is what VerifyRelease found.
type ReleaseCheck struct {
	Label   string `json:"label"`
	State   string `json:"state"`
	Hash    string `json:"hash"`    // the commitment (H(L,r,M), or H(L,M) if unsalted) as posted and signed
	Found   string `json:"found"`   // the same commitment over the message now in the mailbox
	Where   string `json:"where"`   // account/mailbox-id/uid of the released copy
	OK      bool   `json:"ok"`      // the copy matches and the evidence verifies
	Verdict string `json:"verdict"` // the evidence verifier's account of the item
}

// VerifyRelease checks a released item end to end: the message in the
// recipient's mailbox hashes to the commitment that was signed, and the item's
// evidence bundle verifies against the gateway key with that message.
func (s *Service) VerifyRelease(label string) (*ReleaseCheck, error) {
	it, err := s.item(label)
	if err != nil {
		return nil, err
	}
	rc := &ReleaseCheck{Label: label, State: it.State, Hash: it.Hash}
	if it.State != StateReleased && it.State != StateDeemed {
		return rc, fmt.Errorf("item %s is %s: no message was released", label, it.State)
	}
	var raw []byte
	err = s.store.View(func(tx *mailbox.Tx) error {
		refs, err := tx.MessagesByBlob(it.Blob)
		if err != nil {
			return err
		}
		if len(refs) == 0 {
			return fmt.Errorf("the released message of %s is no longer in any mailbox", label)
		}
		r := refs[0]
		rc.Where = fmt.Sprintf("%s/%d/%d", r.Account, r.MailboxID, r.UID)
		raw, err = tx.BlobBytes(it.Blob)
		return err
	})
	if err != nil {
		return rc, err
	}
	found, err := it.Commit(raw)
	if err != nil {
		return rc, err
	}
	rc.Found = receipts.FormatHash(found)
	b, err := s.Bundle(label)
	if err != nil {
		return rc, err
	}
	v, err := evidence.Verify(b, evidence.VerifyOptions{
		GatewayKey: s.log.Signer().Public(),
		Message:    bytes.NewReader(raw),
	})
	if err != nil {
		return rc, fmt.Errorf("evidence of %s: %w", label, err)
	}
	rc.Verdict = v.String()
	rc.OK = rc.Found == rc.Hash
	if !rc.OK {
		return rc, fmt.Errorf("released message hashes to %s, but %s was signed", rc.Found, rc.Hash)
	}
	return rc, nil
}

// GatewayPublicKey is the key that signs the evidence.
func (s *Service) GatewayPublicKey() ed25519.PublicKey { return s.log.Signer().Public() }
