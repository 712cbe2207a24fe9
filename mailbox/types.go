package mailbox

import (
	"strings"
	"time"
)

// Account is a local recipient.
type Account struct {
	Name          string    `json:"name"`
	PasswordHash  string    `json:"password_hash"`
	Created       time.Time `json:"created"`
	NextMailboxID uint32    `json:"next_mailbox_id"`
	// QuotaStorage (bytes) and QuotaMessages are the account's own
	// limits (quota.go); nil: the store's default; 0: none.
	QuotaStorage  *int64 `json:"quota_storage,omitempty"`
	QuotaMessages *int64 `json:"quota_messages,omitempty"`
}

// MailboxInfo is a mailbox's durable record.
type MailboxInfo struct {
	ID          uint32    `json:"id"`
	Name        string    `json:"name"`
	UIDValidity uint32    `json:"uid_validity"`
	UIDNext     uint32    `json:"uid_next"`
	SpecialUse  []string  `json:"special_use,omitempty"`
	Subscribed  bool      `json:"subscribed"`
	Created     time.Time `json:"created"`
	// RecentUID is the first UID no session has yet claimed as \Recent
	// (RFC 3501 2.3.2): a read-write SELECT claims the messages from it
	// up to UIDNext (Tx.ClaimRecent). One number per mailbox instead of
	// a flag per message, as Dovecot keeps it.
	RecentUID uint32 `json:"recent_uid,omitempty"`
}

// NewMailbox describes a mailbox to create.
type NewMailbox struct {
	Name       string
	SpecialUse []string
	Subscribed bool
}

// DefaultMailboxes are the mailboxes every new account gets, with their
// RFC 6154 SPECIAL-USE attributes, subscribed.
func DefaultMailboxes() []NewMailbox {
	return []NewMailbox{
		{Name: "INBOX", Subscribed: true},
		{Name: "Sent", SpecialUse: []string{`\Sent`}, Subscribed: true},
		{Name: "Drafts", SpecialUse: []string{`\Drafts`}, Subscribed: true},
		{Name: "Trash", SpecialUse: []string{`\Trash`}, Subscribed: true},
		{Name: "Junk", SpecialUse: []string{`\Junk`}, Subscribed: true},
		{Name: "Archive", SpecialUse: []string{`\Archive`}, Subscribed: true},
	}
}

// Message is a message's record in one mailbox. Records handed out by the
// store are never modified afterwards: a change makes a new record.
type Message struct {
	UID          uint32    `json:"u"`
	Flags        []string  `json:"f,omitempty"`
	Size         int64     `json:"s"`
	InternalDate time.Time `json:"d"`
	// SeenAt is when \Seen was first set (zero if never): unread
	// monitoring and auto-forward use it.
	SeenAt time.Time `json:"seen,omitzero"`
	Blob   uint64    `json:"b"`
	// ModSeq is the MODSEQ of the message's last change (RFC 7162; see
	// modseq.go).
	ModSeq uint64 `json:"m,omitempty"`
	// Saved is when the message was saved to this mailbox, in Unix
	// seconds: the RFC 8514 SAVEDATE, set by every APPEND, delivery, COPY
	// and MOVE (a new record). 0 in records from before it was kept:
	// SaveDate then answers the internal date.
	Saved int64 `json:"sv,omitempty"`
}

// SaveDate is the message's RFC 8514 save date, in UTC: when it was saved
// to its mailbox, or for a record from before save dates were kept its
// internal date (for a delivered message, when it arrived; for an APPEND,
// the date the client gave).
func (m *Message) SaveDate() time.Time {
	if m.Saved == 0 {
		return m.InternalDate.UTC()
	}
	return time.Unix(m.Saved, 0).UTC()
}

// HasFlag reports whether the message has flag (case-insensitive).
func (m *Message) HasFlag(flag string) bool {
	for _, f := range m.Flags {
		if f == flag || strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// System flags, spelled as RFC 9051 spells them.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

var systemFlags = []string{FlagSeen, FlagAnswered, FlagFlagged, FlagDeleted, FlagDraft}

// canonicalFlag spells system flags canonically; keywords keep their case.
func canonicalFlag(f string) string {
	for _, sf := range systemFlags {
		if strings.EqualFold(f, sf) {
			return sf
		}
	}
	return f
}

// FlagOp says how SetFlags combines flags with what a message has.
type FlagOp int

const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// Apply returns cur with flags combined by op, as SetFlags stores them
// (cur itself if nothing changes).
func (op FlagOp) Apply(cur, flags []string) []string {
	if out, changed := applyFlags(cur, op, flags); changed {
		return out
	}
	return cur
}

// applyFlags returns the new flag list, or nil and false if nothing changes.
func applyFlags(cur []string, op FlagOp, flags []string) ([]string, bool) {
	out := make([]string, 0, len(cur)+len(flags))
	has := func(list []string, f string) bool {
		for _, x := range list {
			if strings.EqualFold(x, f) {
				return true
			}
		}
		return false
	}
	switch op {
	case FlagsReplace:
		for _, f := range flags {
			if f = canonicalFlag(f); !has(out, f) && !strings.EqualFold(f, `\Recent`) {
				out = append(out, f)
			}
		}
	case FlagsAdd:
		out = append(out, cur...)
		for _, f := range flags {
			if f = canonicalFlag(f); !has(out, f) && !strings.EqualFold(f, `\Recent`) {
				out = append(out, f)
			}
		}
	case FlagsRemove:
		for _, f := range cur {
			if !has(flags, f) {
				out = append(out, f)
			}
		}
	}
	if len(out) == len(cur) {
		same := true
		for _, f := range out {
			if !has(cur, f) {
				same = false
				break
			}
		}
		if same {
			return nil, false
		}
	}
	return out, true
}

// AppendOptions are optional attributes of a new message.
type AppendOptions struct {
	Flags        []string
	InternalDate time.Time
	// Summary, if set, is the message's Store.Summarize, computed before
	// the transaction (Append computes it otherwise).
	Summary []byte
	// QuotaExempt: the append is not checked against the account's
	// quota (quota.go), though it counts: a certified item's M released
	// (it counted while held), the receipt of a decision the recipient
	// must be able to make whatever its usage.
	QuotaExempt bool
}

// AppendResult says where a message went.
type AppendResult struct {
	MailboxID   uint32
	UIDValidity uint32
	UID         uint32
	Blob        uint64
}

// CopyResult maps source UIDs to destination UIDs (RFC 4315 COPYUID).
type CopyResult struct {
	UIDValidity uint32
	SourceUIDs  []uint32
	DestUIDs    []uint32
}

// MailboxStatus are a mailbox's counters, from the in-memory index.
type MailboxStatus struct {
	Messages uint32
	Unseen   uint32
	Deleted  uint32
	Size     int64
	// DeletedSize is the size of the messages flagged \Deleted: what an
	// EXPUNGE would free (RFC 9208 DELETED-STORAGE).
	DeletedSize int64
	UIDNext     uint32
	UIDValidity uint32
	// HighestModSeq is the mailbox's HIGHESTMODSEQ (RFC 7162).
	HighestModSeq uint64
	// Recent counts the messages from MailboxInfo.RecentUID on: those
	// the next read-write SELECT claims (STATUS RECENT).
	Recent uint32
}
