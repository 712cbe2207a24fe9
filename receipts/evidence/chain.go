package evidence

import (
	"fmt"
	"time"

	"certmail/receipts"
)

// State is where an item stands after its records so far.
type State string

const (
	StatePosted       State = "posted"
	StateNotified     State = "notified"
	StateForwarded    State = "forwarded"
	StateAcknowledged State = "acknowledged" // COD received, M not yet released
	StateReleased     State = "released"
	StateRefused      State = "refused"
	StateExpired      State = "expired"
)

// Final reports whether nothing but an operator's view may follow.
func (s State) Final() bool {
	return s == StateReleased || s == StateRefused || s == StateExpired
}

// chain replays an item's records in order and enforces the rules that make
// its evidence coherent: the COP comes first and only once, only the
// recipient or an alternate the item was forwarded to may sign, a ROD names
// a COD the chain holds, and nothing changes after the item is settled.
// Append applies it before signing and Verify while checking, so the log
// never writes a chain its own verifier would refuse.
type chain struct {
	gateway    string
	label      string
	hash       [32]byte
	next       uint64 // the seq the next record must have
	prevDigest string
	state      State
	recipient  string
	signers    map[string]bool // who may sign a COD or refusal
	cods       map[string]string
	// From the COP: the commitment version, when the item was posted and
	// its deadline (a COD must be signed in between).
	commitment int
	posted     time.Time
	deadline   time.Time
	// salt is the r released with M (salted items), "" until then.
	salt string
}

func (c *chain) apply(r Record, digest string) error {
	if c.next == 0 {
		c.gateway, c.label, c.hash = r.Gateway, r.Label, r.Hash
		c.signers = make(map[string]bool)
		c.cods = make(map[string]string)
	}
	switch {
	case r.Gateway != c.gateway:
		return fmt.Errorf("gateway %q, but the item's first record names %q", r.Gateway, c.gateway)
	case r.Label != c.label:
		return fmt.Errorf("label %q, but the item's first record names %q", r.Label, c.label)
	case r.Hash != c.hash:
		return fmt.Errorf("hash differs from the item's first record")
	case r.Seq != c.next:
		return fmt.Errorf("seq %d, want %d", r.Seq, c.next)
	case r.Prev != c.prevDigest:
		return fmt.Errorf("prev hash does not match record %d", c.next-1)
	}
	if err := c.transition(r); err != nil {
		return fmt.Errorf("%s after state %s: %w", r.Type, c.state, err)
	}
	c.next++
	c.prevDigest = digest
	return nil
}

func (c *chain) transition(r Record) error {
	if (r.Type == SubmissionAcceptance) != (r.Seq == 0) {
		return fmt.Errorf("an item's chain starts with its one %s", SubmissionAcceptance)
	}
	if c.state.Final() && r.Type != OperatorView {
		return fmt.Errorf("the item is already settled")
	}
	d := r.Data
	if d.Salt != "" {
		switch {
		case c.commitment != receipts.CommitmentSalted:
			return fmt.Errorf("a salt, but the item's H(L,M) is unsalted")
		case c.salt != "":
			return fmt.Errorf("the salt was already released")
		}
		c.salt = d.Salt
	}
	switch r.Type {
	case SubmissionAcceptance:
		c.commitment, c.posted, c.deadline = d.commitment(), r.Time, d.Deadline
		c.recipient = d.Recipient
		c.signers[d.Recipient] = true
		c.state = StatePosted
	case ConsignmentNotification:
		if c.state == StatePosted {
			c.state = StateNotified
		}
	case Forwarded, OperatorForward:
		if c.state == StateAcknowledged {
			return fmt.Errorf("the item is already acknowledged")
		}
		c.signers[d.Alternate] = true
		c.state = StateForwarded
	case ConsignmentAcceptance, ConsignmentRejection:
		if c.state == StateAcknowledged {
			return fmt.Errorf("the item is already acknowledged")
		}
		if !c.signers[d.Signer] {
			return fmt.Errorf("signer %q is neither the recipient nor an alternate the item was forwarded to", d.Signer)
		}
		if r.Type == ConsignmentRejection {
			c.state = StateRefused
			break
		}
		c.cods[CODHash(d.COD)] = d.Signer
		c.state = StateAcknowledged
	case ContentHandover:
		signer, ok := c.cods[d.CODHash]
		if !ok {
			return fmt.Errorf("cod_hash %s names no COD of this item", d.CODHash)
		}
		if signer != d.Signer {
			return fmt.Errorf("signer %q, but the COD was signed by %q", d.Signer, signer)
		}
		if c.commitment == receipts.CommitmentSalted && d.Salt == "" {
			// M without r: nobody could check M against what B signed.
			return fmt.Errorf("the item's commitment is salted, and the report of delivery does not release the salt")
		}
		c.state = StateReleased
	case AcceptanceRejectionExpiry, ContentConsignmentFailure:
		c.state = StateExpired
	case OperatorView:
	}
	return nil
}
