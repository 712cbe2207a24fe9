// Package keyspace is the one place that says which package owns which
// part of certmail's key space: every key the store holds starts with one
// prefix claimed here, and no claimed prefix starts another (the tests
// check both). A package that needs a new kind of record claims a prefix
// here, then writes under it.
//
// The mailbox store writes its own records under the top-level claims.
// Packages above it persist through mailbox.Tx's Get, Set, Delete and
// Scan (kv.Records), whose keys the store puts under Aux; their prefixes
// are claimed, relative to Aux, in AuxClaims, and the store refuses an
// auxiliary write outside them.
package keyspace

import "strings"

// Top-level prefixes, owned by package mailbox (layouts in mailbox's
// keys.go, modseq.go, timers.go and metadata.go).
const (
	Account     = "acct/"     // account records
	GoneAccount = "acctgone/" // a deleted account's next mailbox ID
	Mailbox     = "mbox/"     // mailbox records, by name
	MailboxID   = "mboxid/"   // mailbox names, by ID
	// Subscription: subscribed names no mailbox has (RFC 3501 6.3.9).
	Subscription = "sub/"
	Message      = "msg/"     // message records (flags, size, dates, blob)
	Blob         = "blob/"    // blob records (reference count, size)
	Raw          = "raw/"     // message bytes, as received
	Summary      = "sum/"     // derived summaries (envelope, structure)
	BlobRef      = "bref/"    // which messages refer to a blob
	Counter      = "seq/"     // store-wide counters
	ModSeq       = "modseq/"  // MODSEQ state of each mailbox
	Vanished     = "gone/"    // expunges, for QRESYNC's VANISHED
	Timer        = "timer/"   // timers, by due time
	TimerID      = "timerid/" // timers, by kind and id
	Usage        = "usage/"   // quota usage of each account
	// Feed is the change journal nodes sharing a database follow each
	// other by (mailbox's follow.go).
	Feed     = "feed/"
	Metadata = "meta/" // METADATA entries (RFC 5464), by mailbox ID
	// Aux is the part of the key space the store lends to the packages
	// above it (AuxClaims).
	Aux = "x/"
)

// Prefixes under Aux, as the packages above the store write them
// (without Aux).
const (
	Evidence   = "evlog/"  // receipts/evidence: the evidence log
	Outbox     = "outbox/" // notifier: notices to senders
	Certified  = "cm/"     // certified: items, attempts, custody, keys
	Forwarding = "fw/"     // forwarding: policies, audit, counters
	API        = "api/"    // api: sender API tokens
	Node       = "node/"   // node: the public gateway key every node signs with
	// AuthGuard: failed-login counts, kept in the store when nodes share
	// it, so that they share one budget.
	AuthGuard = "authfail/"
)

// Claim is a prefix and the package that owns it.
type Claim struct {
	Prefix string
	Owner  string
}

// Claims are the top-level prefixes.
var Claims = []Claim{
	{Account, "mailbox"},
	{GoneAccount, "mailbox"},
	{Mailbox, "mailbox"},
	{MailboxID, "mailbox"},
	{Subscription, "mailbox"},
	{Message, "mailbox"},
	{Blob, "mailbox"},
	{Raw, "mailbox"},
	{Summary, "mailbox"},
	{BlobRef, "mailbox"},
	{Counter, "mailbox"},
	{ModSeq, "mailbox"},
	{Vanished, "mailbox"},
	{Timer, "mailbox"},
	{TimerID, "mailbox"},
	{Usage, "mailbox"},
	{Feed, "mailbox"},
	{Metadata, "mailbox"},
	{Aux, "mailbox (lent to AuxClaims)"},
}

// AuxClaims are the prefixes under Aux.
var AuxClaims = []Claim{
	{Evidence, "receipts/evidence"},
	{Outbox, "notifier"},
	{Certified, "certified"},
	{Forwarding, "forwarding"},
	{API, "api"},
	{Node, "node"},
	{AuthGuard, "authguard"},
}

// Owner returns the package that owns key ("" if no claim covers it); a
// key under Aux is owned by its auxiliary claim.
func Owner(key []byte) string {
	if strings.HasPrefix(string(key), Aux) {
		return AuxOwner(key[len(Aux):])
	}
	return owner(Claims, key)
}

// AuxOwner returns the package that owns an auxiliary key (written
// without Aux), or "".
func AuxOwner(key []byte) string { return owner(AuxClaims, key) }

func owner(claims []Claim, key []byte) string {
	for _, c := range claims {
		// The conversion does not allocate: Go compares in place.
		if strings.HasPrefix(string(key), c.Prefix) {
			return c.Owner
		}
	}
	return ""
}

// Prefix returns the claimed prefix key is under, as it appears in the
// key ("x/evlog/" for an auxiliary key), or "" if no claim covers it:
// what a census of a store (migrate's check) counts keys by.
func Prefix(key []byte) string {
	if strings.HasPrefix(string(key), Aux) {
		for _, c := range AuxClaims {
			if strings.HasPrefix(string(key[len(Aux):]), c.Prefix) {
				return Aux + c.Prefix
			}
		}
		return ""
	}
	for _, c := range Claims {
		if strings.HasPrefix(string(key), c.Prefix) {
			return c.Prefix
		}
	}
	return ""
}
