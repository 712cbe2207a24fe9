package mailbox

import (
	"encoding/binary"
	"strings"

	"certmail/kv/keyspace"
)

// Key layout. Account names are lower-case and cannot contain NUL, so
// "\x00" separates an account from what follows.
//
//	acct/<acct>                         Account record
//	acctgone/<acct>                     a deleted account's next mailbox ID:4
//	mbox/<acct>\x00<mailbox name>       Mailbox record (sorted by name)
//	mboxid/<acct>\x00<mbox id:4>        the mailbox's name (IDs survive renames)
//	sub/<acct>\x00<mailbox name>        a subscription to a name no mailbox has (subscriptions.go)
//	msg/<acct>\x00<mbox id:4><uid:4>    message record (flags, size, dates, blob)
//	blob/<id:8>                         blob record (reference count, size)
//	raw/<id:8>                          the message bytes, as received
//	sum/<id:8>                          derived summary (Options.Summarize)
//	bref/<id:8><acct>\x00<mbox:4><uid:4> which messages refer to a blob
//	seq/<name>                          counters
//	usage/<acct>                        quota usage (quota.go)
//	meta/<acct>\x00<mbox id:4><entry>    METADATA entries, server ones under ID 0 (metadata.go)
//	modseq/, gone/                      MODSEQ state and expunges (modseq.go)
//	timer/, timerid/                    timers (timers.go)
//	x/<...>                             auxiliary space for the packages above
//	                                    the store, under the prefixes they claim
//	                                    in kv/keyspace (AuxClaims)
//
// The prefixes are claimed in kv/keyspace, with every other package's.
const (
	prefixAccount   = keyspace.Account
	prefixGone      = keyspace.GoneAccount
	prefixMailbox   = keyspace.Mailbox
	prefixMailboxID = keyspace.MailboxID
	prefixMessage   = keyspace.Message
	prefixBlob      = keyspace.Blob
	prefixRaw       = keyspace.Raw
	prefixSummary   = keyspace.Summary
	prefixSeq       = keyspace.Counter
	prefixAux       = keyspace.Aux
	prefixBlobRef   = keyspace.BlobRef
	prefixSub       = keyspace.Subscription
)

func accountKey(acct string) []byte { return []byte(prefixAccount + acct) }

func goneAccountKey(acct string) []byte { return []byte(prefixGone + acct) }

func mailboxPrefix(acct string) []byte { return []byte(prefixMailbox + acct + "\x00") }

func mailboxKey(acct, name string) []byte {
	return []byte(prefixMailbox + acct + "\x00" + name)
}

func messagePrefix(acct string, mboxID uint32) []byte {
	k := make([]byte, 0, len(prefixMessage)+len(acct)+1+8)
	k = append(k, prefixMessage...)
	k = append(k, acct...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, mboxID)
}

func messageKey(acct string, mboxID, uid uint32) []byte {
	return binary.BigEndian.AppendUint32(messagePrefix(acct, mboxID), uid)
}

func uidFromMessageKey(k []byte) uint32 {
	return binary.BigEndian.Uint32(k[len(k)-4:])
}

func blobKey(prefix string, id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefix), id)
}

func auxKey(k []byte) []byte {
	return append([]byte(prefixAux), k...)
}

// NormalizeAccount returns the canonical (lower-case) account name, or
// ErrBadName. Names are what a user types in a login form, so they are kept
// to a plain, unambiguous alphabet.
func NormalizeAccount(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" || len(n) > 64 {
		return "", ErrBadName
	}
	for _, r := range n {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '+':
		default:
			return "", ErrBadName
		}
	}
	return n, nil
}
