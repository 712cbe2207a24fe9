package mailbox

// ChangeKind says what a Change is about.
type ChangeKind int

const (
	MessageAdded ChangeKind = iota + 1
	MessageFlags
	MessageExpunged
	MailboxCreated
	MailboxDeleted
	MailboxRenamed
	// AccountDeleted: the account is gone (its mailboxes' MailboxDeleted
	// come in the same commit). Whoever is logged in as it must be
	// logged out: a later account of the name is somebody else.
	AccountDeleted
	// MetadataChanged: METADATA entries (RFC 5464) were set or removed,
	// on a mailbox or, with MailboxID ServerMetadataID and Mailbox "",
	// on the server (metadata.go); Entry names it.
	MetadataChanged
	// MailboxSubscribed and MailboxUnsubscribed: a name was subscribed or
	// unsubscribed (Mailbox; MailboxID is zero for a name no mailbox
	// has). IMAP NOTIFY's SubscriptionChange (RFC 5465 section 5.7).
	MailboxSubscribed
	MailboxUnsubscribed
)

// Change is one committed change, delivered to listeners in commit order.
type Change struct {
	Kind      ChangeKind
	Account   string
	MailboxID uint32
	Mailbox   string // the mailbox's name (the new name for a rename)
	OldName   string // for MailboxRenamed
	// Entry is the entry name a MetadataChanged set or removed (one
	// Change per entry, in the order the command gave them).
	Entry string
	// Message is the new record (added or flags changed) or the removed one.
	Message *Message
	// Seq is the message's sequence number: after the change for
	// MessageAdded and MessageFlags, before it for MessageExpunged.
	Seq uint32
	// Count is the number of messages in the mailbox after the change.
	Count uint32
	// ModSeq is the change's MODSEQ (the entry it wrote in the mailbox's
	// change log, modseq.go); zero for changes to the mailbox list.
	ModSeq uint64
	// Source is what the caller passed to UpdateFrom, so that a session can
	// recognise its own changes.
	Source any
}

// OnChange registers fn to be called, synchronously and in commit order,
// after every committed change. fn must not block or call back into the
// store's write methods.
func (s *Store) OnChange(fn func(Change)) {
	s.listenersMu.Lock()
	defer s.listenersMu.Unlock()
	s.listeners = append(s.listeners, fn)
}

func (s *Store) emit(c Change) {
	s.listenersMu.RLock()
	defer s.listenersMu.RUnlock()
	for _, fn := range s.listeners {
		fn(c)
	}
}
