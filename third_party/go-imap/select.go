package imap

// SelectOptions contains options for the SELECT or EXAMINE command.
type SelectOptions struct {
	ReadOnly  bool
	CondStore bool // requires CONDSTORE
	// QResync is the QRESYNC parameter (certmail patch, RFC 7162 3.2.5;
	// requires QRESYNC enabled): the client's state of the mailbox.
	QResync *SelectQResync
}

// SelectQResync is what a client knows of a mailbox it resynchronizes
// with SELECT/EXAMINE (QRESYNC (...)) (certmail patch, RFC 7162 3.2.5).
type SelectQResync struct {
	UIDValidity uint32
	ModSeq      uint64
	// KnownUIDs are the UIDs the client knows; nil for all (1:*).
	KnownUIDs UIDSet
	// SeqMatch, if not nil, pairs message sequence numbers with the UIDs
	// the client believes they have (seq-match-data, 3.2.5.2).
	SeqMatch *SelectQResyncSeqMatch
}

// SelectQResyncSeqMatch is the seq-match-data of the QRESYNC parameter:
// the n-th number of SeqNums had the n-th UID of UIDs.
type SelectQResyncSeqMatch struct {
	SeqNums SeqSet
	UIDs    UIDSet
}

// SelectData is the data returned by a SELECT command.
//
// In the old RFC 2060, PermanentFlags, UIDNext and UIDValidity are optional.
type SelectData struct {
	// Flags defined for this mailbox
	Flags []Flag
	// Flags that the client can change permanently
	PermanentFlags []Flag
	// Number of messages in this mailbox (aka. "EXISTS")
	NumMessages uint32
	// Sequence number of the first unseen message. Obsolete, IMAP4rev1 only.
	// Server-only, not supported in imapclient.
	FirstUnseenSeqNum uint32
	// Number of recent messages in this mailbox. Obsolete, IMAP4rev1 only.
	// Server-only, not supported in imapclient.
	NumRecent   uint32
	UIDNext     UID
	UIDValidity uint32

	List *ListData // requires IMAP4rev2

	HighestModSeq uint64 // requires CONDSTORE

	// MailboxID, if not empty, is sent as OK [MAILBOXID (id)] (certmail
	// patch, RFC 8474 4.1; requires OBJECTID).
	MailboxID string
}
