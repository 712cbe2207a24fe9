package kv

// Records is what the packages above the mailbox store (receipts and
// receipts/evidence, notifier, certified, forwarding, api) persist
// through: the reads and writes of one store transaction, so that their
// records commit together with the mail they are about. mailbox.Tx
// implements it over the auxiliary part of the key space, where each
// package writes under the prefix it claims in kv/keyspace.
type Records interface {
	// Get returns a copy of the value of key; found is false when there
	// is none.
	Get(key []byte) (value []byte, found bool, err error)
	// GetMany calls fn(i, value) for each keys[i] that has a value, in no
	// set order, as Txn.GetMany does: on PostgreSQL one round trip for
	// them all, where each Get is one. value is valid only during the
	// call.
	GetMany(keys [][]byte, fn func(i int, value []byte) error) error
	// Set writes value under key; the store copies both.
	Set(key, value []byte) error
	Delete(key []byte) error
	// Scan calls fn for every key with the prefix, in key order. The
	// slices are valid only during the call.
	Scan(prefix []byte, fn func(key, value []byte) error) error
}

// RecordStore runs functions in store transactions (mailbox.Store's
// Records): Update commits fn's writes if fn returns nil; View reads.
type RecordStore interface {
	Update(fn func(Records) error) error
	View(fn func(Records) error) error
}
