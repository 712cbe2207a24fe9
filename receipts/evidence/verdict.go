package evidence

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"certmail/receipts"
)

// Verdict is what a verified bundle shows.
type Verdict struct {
	Label   string
	Hash    string // the commitment: H(L,r,M), or H(L,M) if unsalted
	Gateway string
	// Commitment is the version of Hash the COP names:
	// receipts.CommitmentSalted or CommitmentUnsalted.
	Commitment int
	// Salt is r of a salted Hash as the gateway released it with M ("" if
	// it was not released, or the item is unsalted).
	Salt           string `json:",omitempty"`
	State          State  // where the item stands after its last record
	Checkpoint     TreeHead
	MessageChecked bool // the message file was given and matches Hash
	// GatewayKeyPinned is true when the records were checked against the
	// caller's key; otherwise only against keys the bundle itself names,
	// which proves nothing until their kid is compared with P's published
	// key.
	GatewayKeyPinned bool
	GatewayKeyIDs    []string // the kids of the keys that signed records
	// Complete is true when the gateway signed (the bundle's head) that
	// Events are all the item's records as of HeadIssuedAt. It is false
	// for a version 1 bundle, which has no head: records after its last
	// one may exist, and State may be out of date.
	Complete     bool
	HeadIssuedAt time.Time `json:",omitzero"`
	// Events says, one line per record and in order, what happened, when,
	// and who signed.
	Events []string
}

// add describes a verified record.
func (v *Verdict) add(r Record, kid string, leaf uint64, cod *codClaims) {
	d := r.Data
	var what string
	switch r.Type {
	case SubmissionAcceptance:
		what = fmt.Sprintf("accepted for %s, deadline %s", d.Recipient, stamp(d.Deadline))
		if d.Sender != "" {
			what += ", from " + d.Sender
		}
	case ConsignmentNotification:
		what = "notification stub delivered to " + d.Recipient
	case ConsignmentAcceptance:
		what = fmt.Sprintf("%s signed a certificate of delivery at %s (%s key)", cod.Recipient, cod.SignedAt, cod.Custody)
	case ConsignmentRejection:
		what = fmt.Sprintf("%s signed a refusal at %s (%s key)", cod.Recipient, cod.SignedAt, cod.Custody)
	case ContentHandover:
		what = fmt.Sprintf("message released to %s against COD %s", d.Signer, d.CODHash)
		if d.Salt != "" {
			what += ", with salt " + d.Salt
		}
	case AcceptanceRejectionExpiry:
		what = "neither accepted nor refused in time"
	case ContentConsignmentFailure:
		what = "not delivered by the deadline"
		if !d.Deadline.IsZero() {
			what += " " + stamp(d.Deadline)
		}
	case Forwarded:
		what = "stub forwarded to " + d.Alternate
		if d.Recipient != "" {
			what += " from " + d.Recipient
		}
	case OperatorView:
		what = "operator " + d.Actor + " viewed the held item"
	case OperatorForward:
		what = fmt.Sprintf("operator %s forwarded the stub to %s", d.Actor, d.Alternate)
	}
	if !d.Deadline.IsZero() && r.Type == AcceptanceRejectionExpiry {
		what += ", deadline " + stamp(d.Deadline)
	}
	if d.Actor != "" && r.Type == Forwarded {
		what += ", by " + d.Actor
	}
	if d.Reason != "" {
		what += " (" + d.Reason + ")"
	}
	if d.Salt != "" && r.Type == AcceptanceRejectionExpiry {
		what += ", with salt " + d.Salt
	}
	if !slices.Contains(v.GatewayKeyIDs, kid) {
		v.GatewayKeyIDs = append(v.GatewayKeyIDs, kid)
	}
	v.Events = append(v.Events, fmt.Sprintf("%s  #%d %s%s: %s; signed by gateway %s (key %s), log leaf %d",
		stamp(r.Time), r.Seq, r.Type, certificateName(r.Type), what, r.Gateway, kid, leaf))
}

// certificateName gives the CEM name of the records that are one.
func certificateName(t EventType) string {
	switch t {
	case SubmissionAcceptance:
		return " (COP)"
	case ConsignmentAcceptance:
		return " (COD)"
	case ContentHandover:
		return " (ROD)"
	}
	return ""
}

// String renders the verdict for a person.
func (v *Verdict) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Item %s, %s %s, gateway %s\n", v.Label, v.CommitmentName(), v.Hash, v.Gateway)
	for _, e := range v.Events {
		fmt.Fprintf(&sb, "  %s\n", e)
	}
	fmt.Fprintf(&sb, "All %d records are in log %s at size %d, root %s, checkpoint signed by the gateway\n",
		len(v.Events), v.Checkpoint.Origin, v.Checkpoint.Size, base64.StdEncoding.EncodeToString(v.Checkpoint.Root))
	if v.Complete {
		fmt.Fprintf(&sb, "Complete: the gateway signed at %s that these are all %d records of the item (log size %d)\n",
			stamp(v.HeadIssuedAt), len(v.Events), v.Checkpoint.Size)
	} else {
		sb.WriteString("Completeness not shown (version 1 bundle without a signed head): records after the last one may exist\n")
	}
	if v.GatewayKeyPinned {
		fmt.Fprintf(&sb, "Signed by the pinned gateway key %s\n", strings.Join(v.GatewayKeyIDs, ", "))
	} else {
		fmt.Fprintf(&sb, "Signed by gateway key %s as named in the bundle: compare it with the gateway's published key\n",
			strings.Join(v.GatewayKeyIDs, ", "))
	}
	if v.Commitment == receipts.CommitmentSalted {
		if v.Salt != "" {
			fmt.Fprintf(&sb, "Salted commitment: the salt r %s was released with the message\n", v.Salt)
		} else {
			sb.WriteString("Salted commitment: the salt r was not released (the message was not handed over)\n")
		}
	} else {
		sb.WriteString("Unsalted commitment H(L,M) (posted before commitments were salted)\n")
	}
	if v.MessageChecked {
		fmt.Fprintf(&sb, "The message file matches %s\n", v.CommitmentName())
	} else {
		sb.WriteString("No message file was checked\n")
	}
	if v.Complete {
		fmt.Fprintf(&sb, "Final state: %s (as of %s)\n", v.State, stamp(v.HeadIssuedAt))
	} else {
		fmt.Fprintf(&sb, "Final state: %s (as of the last record shown)\n", v.State)
	}
	return sb.String()
}

// CommitmentName names the item's hash as its version defines it.
func (v *Verdict) CommitmentName() string { return receipts.CommitmentName(v.Commitment) }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
