package receipts

// KV is the slice of a store transaction that receipts persists into. The
// mailbox store's transaction satisfies it; keys are scoped by the store to
// a namespace of their own, so receipts chooses its own key layout.
type KV interface {
	// Get returns the value for key; found is false when there is none.
	Get(key []byte) (value []byte, found bool, err error)
	Set(key, value []byte) error
	Delete(key []byte) error
	// Scan calls fn for every key with the prefix, in key order. The
	// slices are valid only during the call.
	Scan(prefix []byte, fn func(key, value []byte) error) error
}
