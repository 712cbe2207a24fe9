package certified

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"certmail/receipts"

	"certmail/kv"

	"certmail/kv/keyspace"
)

// Item states, as DESIGN.md names them.
const (
	StateNotified  = "notified"  // stub delivered, waiting for a decision
	StateForwarded = "forwarded" // stub also passed to an alternate
	StateReleased  = "released"  // COD given, M in the signer's INBOX
	StateRefused   = "refused"
	StateExpired   = "expired" // deadline passed: non-delivery
	StateDeemed    = "deemed"  // deadline passed: deemed delivered, M released
)

// Item is a certified item's durable record, kept at cm/item/<label>.
type Item struct {
	Label string `json:"label"`
	Hash  string `json:"hash"` // the commitment H(L,r,M) (H(L,M) if Salt is ""), "sha256:<hex>"
	// Salt is r of H(L,r,M), lower-case hex: held with M, in no mailbox,
	// and released (into the evidence) only with M. Items posted before
	// commitments were salted have none, and an unsalted Hash.
	Salt   string `json:"salt,omitempty"`
	Sender string `json:"sender,omitempty"`
	// SenderAuth says how Sender was authenticated (PostRequest);
	// empty: it was not, and gets no notice by mail.
	SenderAuth string    `json:"sender_auth,omitempty"`
	Recipient  string    `json:"recipient"` // B, the account
	Deadline   time.Time `json:"deadline"`
	OnExpiry   string    `json:"on_expiry"`
	Reveal     string    `json:"reveal"`
	// Alternates the sender asked for (already filtered by policy).
	Alternates []string `json:"alternates,omitempty"`
	// Holders are the accounts that were given a stub and may sign.
	Holders []string `json:"holders"`
	// External are the addresses outside this gateway the stub was sent
	// to, by mail, as alternates: they were told, but hold no account
	// here to sign with.
	External []string `json:"external,omitempty"`
	State    string   `json:"state"`
	Blob     uint64   `json:"blob"` // M, referenced while pending
	// HeldSize is M's size as counted against the recipient's quota
	// while M is held (mailbox.Tx.AdjustUsage); 0 for items from before
	// quotas, which were never counted.
	HeldSize int64     `json:"held_size,omitempty"`
	StubBlob uint64    `json:"stub_blob"` // the stub, referenced while pending
	Posted   time.Time `json:"posted"`
	Decided  time.Time `json:"decided,omitzero"`
	Signer   string    `json:"signer,omitempty"`
	Custody  string    `json:"custody,omitempty"`
	// Submitter is the API token name that posted it ("" for LMTP).
	Submitter string `json:"submitter,omitempty"`
	// Revealed From and Subject, as the stub shows them.
	From    string `json:"from,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// MailsNotices reports whether the item's notices (certificate of
// posting, report of delivery or non-delivery, refusal, forwarding) are
// mailed to its sender: only when something vouches for the sender
// address. An envelope sender or a From field is whatever the message's
// author wrote; mailing evidence to it is backscatter to a third party
// when it is forged. Unauthenticated senders' items keep all their
// evidence, retrievable by label (API, `certmail evidence LABEL`).
func (it *Item) MailsNotices() bool {
	return it.SenderAuth != "" && it.Sender != "" && strings.Contains(it.Sender, "@")
}

// Pending reports whether the item still waits for a decision.
func (it *Item) Pending() bool {
	return it.State == StateNotified || it.State == StateForwarded
}

// ReleasedTo names the account M was released to, if it was: the signer
// of the COD, or the recipient on deemed delivery.
func (it *Item) ReleasedTo() (string, bool) {
	switch it.State {
	case StateReleased:
		return it.Signer, true
	case StateDeemed:
		return it.Recipient, true
	}
	return "", false
}

// IsHolder reports whether acct was given a stub of the item.
func (it *Item) IsHolder(acct string) bool { return slices.Contains(it.Holders, acct) }

// HashBytes returns the item's commitment.
func (it *Item) HashBytes() [32]byte {
	h, _ := receipts.ParseHash(it.Hash)
	return h
}

// Commitment is the version of the item's Hash.
func (it *Item) Commitment() int {
	if it.Salt == "" {
		return receipts.CommitmentUnsalted
	}
	return receipts.CommitmentSalted
}

// Commit computes the item's commitment over a copy of M, of the item's
// version: what VerifyRelease compares with Hash.
func (it *Item) Commit(m []byte) ([32]byte, error) {
	var salt *receipts.Salt
	if it.Salt != "" {
		s, err := receipts.ParseSalt(it.Salt)
		if err != nil {
			return [32]byte{}, fmt.Errorf("item %s: %w", it.Label, err)
		}
		salt = &s
	}
	return receipts.CommitmentReader(it.Commitment(), it.Label, salt, bytes.NewReader(m))
}

func itemKey(label string) []byte { return []byte(keyspace.Certified + "item/" + label) }

// GetItem reads an item record.
func GetItem(kv kv.Records, label string) (*Item, error) {
	b, ok, err := kv.Get(itemKey(label))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("certified item %q: %w", label, ErrNoItem)
	}
	var it Item
	if err := json.Unmarshal(b, &it); err != nil {
		return nil, fmt.Errorf("certified item %q: %w", label, err)
	}
	return &it, nil
}

func putItem(kv kv.Records, it *Item) error {
	b, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return kv.Set(itemKey(it.Label), b)
}

// ListItems calls fn for every item.
func ListItems(kv kv.Records, fn func(*Item) error) error {
	return kv.Scan([]byte(keyspace.Certified+"item/"), func(_, v []byte) error {
		var it Item
		if err := json.Unmarshal(v, &it); err != nil {
			return err
		}
		return fn(&it)
	})
}
