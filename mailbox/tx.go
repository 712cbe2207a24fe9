package mailbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Tx is a store transaction. Write transactions are serialized; what they
// change becomes visible to readers, the index and the change feed only
// when they commit.
type Tx struct {
	s        *Store
	txn      *badger.Txn
	writable bool
	source   any
	// post runs after a successful commit, under the index lock, to
	// update the index; it returns the changes to announce.
	post []func() []Change
	// modseqs holds the mod-sequence state of each mailbox the
	// transaction changed (modseq.go), written just before it commits.
	modseqs txModSeqs
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
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	tx := &Tx{s: s, txn: txn, writable: true, source: source}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.flushModSeqs(); err != nil {
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
	return s.db.View(func(txn *badger.Txn) error {
		return fn(&Tx{s: s, txn: txn})
	})
}

func (tx *Tx) afterCommit(fn func() []Change) { tx.post = append(tx.post, fn) }

// OnCommit runs fn once the transaction has committed (not at all if it
// does not), for state kept in memory that must follow the store. fn runs
// under the store's locks: it must not block or call the store.
func (tx *Tx) OnCommit(fn func()) {
	tx.afterCommit(func() []Change { fn(); return nil })
}

func (tx *Tx) getJSON(key []byte, v any) (bool, error) {
	item, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %q: %w", key, err)
	}
	if err := item.Value(func(b []byte) error { return json.Unmarshal(b, v) }); err != nil {
		return false, fmt.Errorf("decoding %q: %w", key, err)
	}
	return true, nil
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
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.PrefetchValues = !keysOnly
	opts.PrefetchSize = 64
	it := tx.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		var err error
		if keysOnly {
			err = fn(item.Key(), nil)
		} else {
			err = item.Value(func(v []byte) error { return fn(item.Key(), v) })
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// nextCounter increments and returns a named store-wide counter, starting
// from start+1 the first time.
func (tx *Tx) nextCounter(name string, start uint64) (uint64, error) {
	key := []byte(prefixSeq + name)
	n := start
	item, err := tx.txn.Get(key)
	switch {
	case err == nil:
		if err := item.Value(func(b []byte) error {
			if len(b) != 8 {
				return fmt.Errorf("counter %s: bad length %d", name, len(b))
			}
			n = binary.BigEndian.Uint64(b)
			return nil
		}); err != nil {
			return 0, err
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return 0, fmt.Errorf("reading counter %s: %w", name, err)
	}
	n++
	return n, tx.set(key, binary.BigEndian.AppendUint64(nil, n))
}

// Aux key space, for other packages (receipts, notifier, forwarding).

// Get returns the auxiliary value for key.
func (tx *Tx) Get(key []byte) ([]byte, bool, error) {
	item, err := tx.txn.Get(auxKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %q: %w", key, err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, false, fmt.Errorf("reading %q: %w", key, err)
	}
	return v, true, nil
}

// Set writes an auxiliary value.
func (tx *Tx) Set(key, value []byte) error { return tx.set(auxKey(key), bytes.Clone(value)) }

// Delete removes an auxiliary value.
func (tx *Tx) Delete(key []byte) error { return tx.del(auxKey(key)) }

// Scan calls fn for every auxiliary key with the prefix, in key order.
func (tx *Tx) Scan(prefix []byte, fn func(key, value []byte) error) error {
	full := auxKey(prefix)
	return tx.scan(full, false, func(k, v []byte) error {
		return fn(k[len(prefixAux):], v)
	})
}

// now is the store's clock, in one place so records agree.
func now() time.Time { return time.Now().UTC() }
