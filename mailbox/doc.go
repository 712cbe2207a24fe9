// Package mailbox is certmail's durable store: accounts and their
// passwords, mailboxes, messages (raw bytes stored once as reference-counted
// blobs), UIDs, flags, held items, and the change feed that lets every
// session of a mailbox see the same history in commit order. It keeps
// everything as key-value pairs in a kv.Engine (the storage seam): Badger in
// the data directory unless Options.Engine names another, under the key
// prefixes claimed in kv/keyspace.
//
// Every change to a mailbox's messages has a MODSEQ (RFC 7162) and an
// entry in the mailbox's durable change log, written in the change's own
// transaction (modseq.go): the change feed announces exactly those entries
// after the commit, and ReadLog reads them back from any MODSEQ, for
// QRESYNC clients and for a process following the store.
//
// It knows nothing of IMAP wire types or of receipts. Other packages keep
// their own state in the store's auxiliary key space through Tx (their
// kv.Records) and Store.Records, so that a state change and the messages
// it moves commit in one transaction.
//
// All writes are serialized by one store-wide lock: this gives the change
// feed a single commit order and keeps the in-memory mailbox index exact.
// Durability is by an explicit, group-committed sync (Store.Sync): a caller
// that acknowledges a message to the outside world (LMTP 250, APPEND OK)
// syncs first, and concurrent deliveries share one fsync.
package mailbox
