package evidence

import (
	"crypto/sha256"
	"strings"
	"time"

	"certmail/receipts"
)

// EventType names a record's event, after ETSI EN 319 522 where one fits.
type EventType string

const (
	// SubmissionAcceptance is the certificate of posting (COP): P accepted
	// the item for recipient B with deadline T.
	SubmissionAcceptance EventType = "SubmissionAcceptance"
	// ConsignmentNotification records that the notification stub reached
	// a mailbox.
	ConsignmentNotification EventType = "ConsignmentNotification"
	// ConsignmentAcceptance records the certificate of delivery (COD)
	// that P received and verified; it carries the COD verbatim.
	ConsignmentAcceptance EventType = "ConsignmentAcceptance"
	// ConsignmentRejection records a signed refusal; it carries the
	// refusal verbatim.
	ConsignmentRejection EventType = "ConsignmentRejection"
	// ContentHandover is the report of delivery (ROD): M was released,
	// against the COD whose hash it names.
	ContentHandover EventType = "ContentHandover"
	// AcceptanceRejectionExpiry records that nobody accepted or refused
	// the item in time.
	AcceptanceRejectionExpiry EventType = "AcceptanceRejectionExpiry"
	// ContentConsignmentFailure records that deadline T passed without
	// delivery.
	ContentConsignmentFailure EventType = "ContentConsignmentFailure"
	// Forwarded records that a policy passed the stub on to an alternate
	// recipient, who may sign instead.
	Forwarded EventType = "Forwarded"
	// OperatorView records that an operator looked at the held item.
	OperatorView EventType = "OperatorView"
	// OperatorForward records that an operator forwarded the stub by hand.
	OperatorForward EventType = "OperatorForward"
)

// Custody values of a COD: who held the key that signed it.
const (
	CustodyGatewayHeld   = "gateway-held"
	CustodyRecipientHeld = "recipient-held"
)

// Event is what a caller asks the log to record. The log adds the gateway,
// seq, prev and (if Time is zero) the time, and signs.
type Event struct {
	Type  EventType
	Label string
	Hash  [32]byte // the item's commitment: H(L,r,M), or H(L,M) for unsalted items
	Time  time.Time
	Data  EventData
}

// EventData holds the event-specific fields of a record. Which are required
// depends on the type (see the New* constructors); the rest stay empty and
// are left out of the signed JSON.
type EventData struct {
	Sender    string    `json:"sender,omitempty"`    // A, where P knows it
	Recipient string    `json:"recipient,omitempty"` // B, or the mailbox a stub reached
	Deadline  time.Time `json:"deadline,omitzero"`   // T
	COD       string    `json:"cod,omitempty"`       // COD or refusal, compact JWS, verbatim
	CODHash   string    `json:"cod_hash,omitempty"`  // H(COD): SHA-256 of the COD's compact bytes
	Signer    string    `json:"signer,omitempty"`    // who signed the COD or refusal
	Custody   string    `json:"custody,omitempty"`   // CustodyGatewayHeld or CustodyRecipientHeld
	Alternate string    `json:"alternate,omitempty"` // to whom the stub was forwarded
	Actor     string    `json:"actor,omitempty"`     // the operator or policy that acted
	Reason    string    `json:"reason,omitempty"`
	// Commitment is the version of the item's hash, on the COP only:
	// receipts.CommitmentSalted, or absent for the unsalted H(L,M) of
	// items posted before salting (one spelling for each).
	Commitment int `json:"commitment,omitempty"`
	// Salt is r of H(L,r,M), lower-case hex, released with M: on the ROD
	// (ContentHandover) and on a deemed delivery's
	// AcceptanceRejectionExpiry, never before.
	Salt string `json:"salt,omitempty"`
}

// NewSubmissionAcceptance is the COP: P accepted the item labelled label,
// whose commitment of the given version (receipts.CommitmentSalted, or
// CommitmentUnsalted) is hash, for recipient with deadline.
func NewSubmissionAcceptance(label string, hash [32]byte, commitment int, sender, recipient string, deadline time.Time) Event {
	if commitment == receipts.CommitmentUnsalted {
		commitment = 0 // the unsalted version is written by leaving it out
	}
	return Event{Type: SubmissionAcceptance, Label: label, Hash: hash,
		Data: EventData{Sender: sender, Recipient: recipient, Deadline: deadline, Commitment: commitment}}
}

// NewConsignmentNotification records that the stub reached mailbox owner.
func NewConsignmentNotification(label string, hash [32]byte, owner string) Event {
	return Event{Type: ConsignmentNotification, Label: label, Hash: hash,
		Data: EventData{Recipient: owner}}
}

// NewConsignmentAcceptance records a verified COD, signed by signer, whose
// key was held as custody says. Whitespace around the COD (an IMAP APPEND
// often adds a newline) is dropped: the record keeps the compact JWS.
func NewConsignmentAcceptance(label string, hash [32]byte, cod, signer, custody string) Event {
	return Event{Type: ConsignmentAcceptance, Label: label, Hash: hash,
		Data: EventData{COD: strings.TrimSpace(cod), Signer: signer, Custody: custody}}
}

// NewConsignmentRejection records a verified refusal signed by signer.
func NewConsignmentRejection(label string, hash [32]byte, refusal, signer, custody, reason string) Event {
	return Event{Type: ConsignmentRejection, Label: label, Hash: hash,
		Data: EventData{COD: strings.TrimSpace(refusal), Signer: signer, Custody: custody, Reason: reason}}
}

// NewContentHandover is the ROD: M was released against cod, signed by
// signer, and with it the salt r of a salted commitment ("" for an
// unsalted item), so that B and A can check M against what B signed. The
// record carries H(COD), not the COD, which the preceding
// ConsignmentAcceptance already holds.
func NewContentHandover(label string, hash [32]byte, cod, signer, salt string) Event {
	return Event{Type: ContentHandover, Label: label, Hash: hash,
		Data: EventData{CODHash: CODHash(cod), Signer: signer, Salt: salt}}
}

// NewAcceptanceRejectionExpiry records that the acceptance window that
// ended at deadline passed with no COD and no refusal. salt is the salt
// released with M when the policy deems the item delivered, "" otherwise.
func NewAcceptanceRejectionExpiry(label string, hash [32]byte, deadline time.Time, reason, salt string) Event {
	return Event{Type: AcceptanceRejectionExpiry, Label: label, Hash: hash,
		Data: EventData{Deadline: deadline, Reason: reason, Salt: salt}}
}

// NewContentConsignmentFailure records that deadline passed without
// delivery; reason says what the policy made of it.
func NewContentConsignmentFailure(label string, hash [32]byte, deadline time.Time, reason string) Event {
	return Event{Type: ContentConsignmentFailure, Label: label, Hash: hash,
		Data: EventData{Deadline: deadline, Reason: reason}}
}

// NewForwarded records that policy actor passed the stub from holder to
// alternate.
func NewForwarded(label string, hash [32]byte, holder, alternate, actor, reason string) Event {
	return Event{Type: Forwarded, Label: label, Hash: hash,
		Data: EventData{Recipient: holder, Alternate: alternate, Actor: actor, Reason: reason}}
}

// NewOperatorView records that operator actor viewed the held item.
func NewOperatorView(label string, hash [32]byte, actor, reason string) Event {
	return Event{Type: OperatorView, Label: label, Hash: hash,
		Data: EventData{Actor: actor, Reason: reason}}
}

// NewOperatorForward records that operator actor forwarded the stub to
// alternate by hand.
func NewOperatorForward(label string, hash [32]byte, actor, alternate, reason string) Event {
	return Event{Type: OperatorForward, Label: label, Hash: hash,
		Data: EventData{Alternate: alternate, Actor: actor, Reason: reason}}
}

// CODHash is H(COD) as a ROD names it: SHA-256 of the COD's compact bytes
// (without surrounding whitespace).
func CODHash(cod string) string {
	return receipts.FormatHash(sha256.Sum256([]byte(strings.TrimSpace(cod))))
}
