package mailbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"certmail/kv"
	"certmail/kv/keyspace"
)

// Tx is a store transaction. Write transactions are serialized; what they
// change becomes visible to readers, the index and the change feed only
// when they commit.
type Tx struct {
	s        *Store
	txn      kv.Txn
	writable bool
	// buf is scratch space for values decoded as soon as they are read
	// (getJSON), so that reads do not allocate a copy each.
	buf    []byte
	source any
	// post runs after a successful commit, under the index lock, to
	// update the index; it returns the changes to announce.
	post []func() []Change
	// modseqs holds the mod-sequence state of each mailbox the
	// transaction changed (modseq.go), written just before it commits.
	modseqs txModSeqs
	// usageMemo is the last account usage record read or written
	// (quota.go).
	usageMemo *usageMemo
}

// Update runs fn in a write transaction and commits it if fn returns nil.
func (s *Store) Update(fn func(tx *Tx) error) error { return s.UpdateFrom(nil, fn) }

// UpdateFrom is Update with a source tag copied into every Change, so that
// the session that caused a change can tell it apart.
func (s *Store) UpdateFrom(source any, fn func(tx *Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// Below half the reserve even small writes stop: Badger writes
	// through memory maps, and a fault on a full disk kills the process.
	if err := s.space.forWrite(); err != nil {
		return err
	}
	txn, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("starting transaction: %w", err)
	}
	defer txn.Discard()
	tx := &Tx{s: s, txn: txn, writable: true, source: source}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.flushModSeqs(); err != nil {
		return err
	}
	if err := tx.reserve(); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	tx.publishModSeqs()
	var changes []Change
	s.idx.mu.Lock()
	for _, p := range tx.post {
		changes = append(changes, p()...)
	}
	s.idx.mu.Unlock()
	for _, c := range changes {
		c.Source = source
		s.emit(c)
	}
	return nil
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	txn, err := s.db.Begin(false)
	if err != nil {
		return fmt.Errorf("starting transaction: %w", err)
	}
	defer txn.Discard()
	return fn(&Tx{s: s, txn: txn})
}

func (tx *Tx) afterCommit(fn func() []Change) { tx.post = append(tx.post, fn) }

// OnCommit runs fn once the transaction has committed (not at all if it
// does not), for state kept in memory that must follow the store. fn runs
// under the store's locks: it must not block or call the store.
func (tx *Tx) OnCommit(fn func()) {
	tx.afterCommit(func() []Change { fn(); return nil })
}

func (tx *Tx) getJSON(key []byte, v any) (bool, error) {
	b, err := tx.txn.Get(key, tx.buf)
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %q: %w", key, err)
	}
	tx.buf = b
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decoding %q: %w", key, err)
	}
	return true, nil
}

// get returns a copy of the value of key, which the caller may keep.
func (tx *Tx) get(key []byte) ([]byte, bool, error) {
	v, err := tx.txn.Get(key, nil)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %q: %w", key, err)
	}
	return v, true, nil
}

// has reports whether key has a value, without keeping it.
func (tx *Tx) has(key []byte) (bool, error) {
	b, err := tx.txn.Get(key, tx.buf)
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %q: %w", key, err)
	}
	tx.buf = b
	return true, nil
}

// getUint64 reads an 8-byte big-endian value (counters, timer due
// times).
func (tx *Tx) getUint64(key []byte) (uint64, bool, error) {
	b, err := tx.txn.Get(key, tx.buf)
	if errors.Is(err, kv.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading %q: %w", key, err)
	}
	tx.buf = b
	if len(b) != 8 {
		return 0, false, fmt.Errorf("reading %q: bad length %d", key, len(b))
	}
	return binary.BigEndian.Uint64(b), true, nil
}

func (tx *Tx) setJSON(key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %q: %w", key, err)
	}
	return tx.set(key, b)
}

func (tx *Tx) set(key, value []byte) error {
	if !tx.writable {
		return errors.New("write in a read-only transaction")
	}
	if err := tx.txn.Set(key, value); err != nil {
		return fmt.Errorf("writing %q: %w", key, err)
	}
	return nil
}

func (tx *Tx) del(key []byte) error {
	if !tx.writable {
		return errors.New("write in a read-only transaction")
	}
	if err := tx.txn.Delete(key); err != nil {
		return fmt.Errorf("deleting %q: %w", key, err)
	}
	return nil
}

// scan calls fn for every key with prefix, in order. keysOnly skips
// fetching values (fn gets nil).
func (tx *Tx) scan(prefix []byte, keysOnly bool, fn func(k, v []byte) error) error {
	return tx.txn.Scan(kv.Range{Prefix: prefix, KeysOnly: keysOnly}, fn)
}

// nextCounter increments and returns a named store-wide counter, starting
// from start+1 the first time.
func (tx *Tx) nextCounter(name string, start uint64) (uint64, error) {
	key := []byte(prefixSeq + name)
	n, found, err := tx.getUint64(key)
	if err != nil {
		return 0, fmt.Errorf("counter %s: %w", name, err)
	}
	if !found {
		n = start
	}
	n++
	return n, tx.set(key, binary.BigEndian.AppendUint64(nil, n))
}

// The auxiliary key space (keyspace.Aux), for the packages above the
// store: Tx is their kv.Records, and Records gives them transactions.

var _ kv.Records = (*Tx)(nil)

// ErrUnclaimedKey: an auxiliary write under a prefix no package claims in
// kv/keyspace.
var ErrUnclaimedKey = errors.New("key outside every prefix claimed in kv/keyspace")

// Get returns the auxiliary value for key.
func (tx *Tx) Get(key []byte) ([]byte, bool, error) {
	return tx.get(auxKey(key))
}

// Set writes an auxiliary value.
func (tx *Tx) Set(key, value []byte) error {
	if keyspace.AuxOwner(key) == "" {
		return fmt.Errorf("writing %q: %w", key, ErrUnclaimedKey)
	}
	return tx.set(auxKey(key), bytes.Clone(value))
}

// Delete removes an auxiliary value.
func (tx *Tx) Delete(key []byte) error {
	if keyspace.AuxOwner(key) == "" {
		return fmt.Errorf("deleting %q: %w", key, ErrUnclaimedKey)
	}
	return tx.del(auxKey(key))
}

// Scan calls fn for every auxiliary key with the prefix, in key order.
func (tx *Tx) Scan(prefix []byte, fn func(key, value []byte) error) error {
	full := auxKey(prefix)
	return tx.scan(full, false, func(k, v []byte) error {
		return fn(k[len(prefixAux):], v)
	})
}

// Records returns the store as the packages above it use it: transactions
// that read and write the auxiliary key space.
func (s *Store) Records() kv.RecordStore { return recordStore{s} }

type recordStore struct{ s *Store }

func (r recordStore) Update(fn func(kv.Records) error) error {
	return r.s.Update(func(tx *Tx) error { return fn(tx) })
}

func (r recordStore) View(fn func(kv.Records) error) error {
	return r.s.View(func(tx *Tx) error { return fn(tx) })
}

// now is the store's clock, in one place so records agree.
func now() time.Time { return time.Now().UTC() }
