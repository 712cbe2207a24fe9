package mailbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"certmail/kv"
	"certmail/kv/keyspace"
)

// Tx is a store transaction. Write transactions are serialized within
// the process (Store.wmu) and, against other processes writing the same
// engine (nodes on one PostgreSQL database), by the engine: a transaction
// that conflicts runs again from the start (UpdateFrom). What it changes
// becomes visible to readers, the index and the change feed only when it
// commits.
type Tx struct {
	s *Store
	// txn is the engine's transaction, seen through w, which notes a
	// conflict whatever the caller does with the error.
	txn      kv.Txn
	w        watchedTxn
	writable bool
	// buf is scratch space for values decoded as soon as they are read
	// (getJSON), so that reads do not allocate a copy each.
	buf    []byte
	source any
	// post runs after a successful commit, under the index lock, to
	// update the index; it returns the changes to announce.
	post []func() []Change
	// onCommit runs after post, outside the index lock (OnCommit).
	onCommit []func()
	// modseqs holds the mod-sequence state of each mailbox the
	// transaction changed (modseq.go), written just before it commits.
	modseqs txModSeqs
	// usageMemo is the last account usage record read or written
	// (quota.go).
	usageMemo *usageMemo
	// notes is what other nodes must hear of (follow.go); nil on a store
	// no other process shares.
	notes *txNotes
	// recordAccts are the accounts whose mailbox records the transaction
	// wrote (reccache.go).
	recordAccts []string
	// began is when the transaction started, before its snapshot
	// (UnixNano; only on a store that follows others: follow.go's
	// scanFloor).
	began int64
}

// watchedTxn passes every call to the engine's transaction and remembers
// whether one reported a conflict. On PostgreSQL a conflict can come from
// any read, and the transaction is then dead; a caller that takes the
// error for "not found" and goes on, or returns an error of its own, must
// still see its transaction run again.
type watchedTxn struct {
	kv.Txn
	conflict bool
	// pre holds values read ahead together (prefetch), which the next
	// Get or GetFunc of each key takes (once: a value read ahead and
	// never asked for costs memory only until the transaction ends, and
	// one asked for none after), unless the transaction writes the key
	// first.
	pre map[string]prefetched
}

// prefetched is a value read ahead, or found missing.
type prefetched struct {
	value []byte
	found bool
}

// prefetch reads keys the transaction is about to read one by one, in
// one GetMany: on PostgreSQL one round trip instead of one each. Only a
// store whose engine is shared prefetches (Store.shared): Badger reads
// locally, and its MODSEQ state is in memory.
//
// Keys read ahead already and not yet taken are not asked again.
func (w *watchedTxn) prefetch(keys ...[]byte) error {
	if w.pre == nil {
		w.pre = make(map[string]prefetched, len(keys))
	} else {
		keys = slices.DeleteFunc(slices.Clone(keys), func(k []byte) bool {
			_, ok := w.pre[string(k)]
			return ok
		})
		if len(keys) == 0 {
			return nil
		}
	}
	found := make([]bool, len(keys))
	err := w.note(w.Txn.GetMany(keys, func(i int, v []byte) error {
		found[i] = true
		w.pre[string(keys[i])] = prefetched{value: bytes.Clone(v), found: true}
		return nil
	}))
	if err != nil {
		return err
	}
	for i, k := range keys {
		if !found[i] {
			w.pre[string(k)] = prefetched{}
		}
	}
	return nil
}

func (w *watchedTxn) note(err error) error {
	if err != nil && !w.conflict && errors.Is(err, kv.ErrConflict) {
		w.conflict = true
	}
	return err
}

func (w *watchedTxn) Get(key, dst []byte) ([]byte, error) {
	if p, ok := w.pre[string(key)]; ok {
		delete(w.pre, string(key))
		if !p.found {
			return nil, kv.ErrNotFound
		}
		return append(dst[:0], p.value...), nil
	}
	v, err := w.Txn.Get(key, dst)
	return v, w.note(err)
}

func (w *watchedTxn) GetFunc(key []byte, fn func(value []byte) error) error {
	if p, ok := w.pre[string(key)]; ok {
		delete(w.pre, string(key))
		if !p.found {
			return kv.ErrNotFound
		}
		return fn(p.value)
	}
	return w.note(w.Txn.GetFunc(key, fn))
}

func (w *watchedTxn) GetMany(keys [][]byte, fn func(i int, value []byte) error) error {
	return w.note(w.Txn.GetMany(keys, fn))
}

func (w *watchedTxn) Set(key, value []byte) error {
	delete(w.pre, string(key))
	return w.note(w.Txn.Set(key, value))
}

func (w *watchedTxn) Delete(key []byte) error {
	delete(w.pre, string(key))
	return w.note(w.Txn.Delete(key))
}

func (w *watchedTxn) Scan(r kv.Range, fn func(key, value []byte) error) error {
	return w.note(w.Txn.Scan(r, fn))
}

func (w *watchedTxn) Commit() error { return w.note(w.Txn.Commit()) }

// newTx starts a transaction.
func (s *Store) newTx(writable bool, source any) (*Tx, error) {
	txn, err := s.db.Begin(writable)
	if err != nil {
		return nil, fmt.Errorf("starting transaction: %w", err)
	}
	tx := &Tx{s: s, writable: writable, source: source}
	if s.follow != nil {
		tx.began = time.Now().UnixNano()
	}
	tx.w.Txn = txn
	tx.txn = &tx.w
	return tx, nil
}

// defaultConflictPatience is how long a conflicting transaction is run
// again, at least (Store.UpdateFrom).
const defaultConflictPatience = 5 * time.Second

// Update runs fn in a write transaction and commits it if fn returns nil.
func (s *Store) Update(fn func(tx *Tx) error) error { return s.UpdateFrom(nil, fn) }

// UpdateFrom is Update with a source tag copied into every Change, so that
// the session that caused a change can tell it apart.
//
// When the transaction conflicts with another writer of the engine
// (another node on the same database: kv.ErrConflict, from any call or
// from the commit), it is discarded and fn runs again in a new one, from
// its first read, with kv.Backoff between attempts: at least
// kv.MaxAttempts times, and on while less than conflictPatience has
// passed since the first (on a loaded machine a transaction that touches
// a busy mailbox can lose twenty times in a second). So fn must be re-runnable: whatever it does outside the
// transaction (a variable of the caller's, a cache, a reply) it must set
// afresh on each run rather than add to, or leave to after Update returns
// or to OnCommit. Everything the store does after a commit (the index,
// the change feed, MODSEQ state, OnCommit) belongs to the attempt that
// committed.
func (s *Store) UpdateFrom(source any, fn func(tx *Tx) error) error {
	var start time.Time
	for attempt := 1; ; attempt++ {
		retry, err := s.updateOnce(source, fn)
		if !retry {
			return err
		}
		if attempt == 1 {
			start = time.Now()
		}
		if attempt >= kv.MaxAttempts && time.Since(start) >= s.conflictPatience {
			return err
		}
		s.log.Debug("transaction conflicted; running it again", "attempt", attempt, "err", err)
		// The lock is not held while waiting: this node's other
		// writers, which may not conflict at all, go on meanwhile.
		time.Sleep(kv.Backoff(attempt))
	}
}

// updateOnce is one attempt of UpdateFrom; retry reports a conflict.
func (s *Store) updateOnce(source any, fn func(tx *Tx) error) (retry bool, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// Below half the reserve even small writes stop: Badger writes
	// through memory maps, and a fault on a full disk kills the process.
	if err := s.space.forWrite(); err != nil {
		return false, err
	}
	tx, err := s.newTx(true, source)
	if err != nil {
		return errors.Is(err, kv.ErrConflict), err
	}
	defer tx.w.Discard()
	if err := tx.run(fn); err != nil {
		// A COMMIT whose answer was lost may have committed: records
		// it wrote are not to be trusted (this node skips its own
		// bulletins).
		tx.dropChangedRecords()
		return tx.w.conflict || errors.Is(err, kv.ErrConflict), err
	}
	tx.publishModSeqs()
	tx.dropChangedRecords()
	// Other nodes' changes this one's follow come first (follow.go).
	changes := tx.catchUp()
	remote := len(changes)
	s.idx.mu.Lock()
	for _, p := range tx.post {
		changes = append(changes, p()...)
	}
	tx.afterPost()
	s.idx.mu.Unlock()
	for _, fn := range tx.onCommit {
		fn()
	}
	for i, c := range changes {
		if i >= remote {
			c.Source = source
		}
		s.emit(c)
	}
	return false, nil
}

// run runs fn and commits.
func (tx *Tx) run(fn func(tx *Tx) error) error {
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.flushModSeqs(); err != nil {
		return err
	}
	if err := tx.writeBulletin(); err != nil {
		return err
	}
	if err := tx.reserve(); err != nil {
		return err
	}
	if err := tx.txn.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(tx *Tx) error) error {
	tx, err := s.newTx(false, nil)
	if err != nil {
		return err
	}
	defer tx.w.Discard()
	return fn(tx)
}

func (tx *Tx) afterCommit(fn func() []Change) { tx.post = append(tx.post, fn) }

// OnCommit runs fn once the transaction has committed (not at all if it
// does not, nor for an attempt that conflicted and ran again), for state
// kept in memory that must follow the store. fn runs after the index is
// updated and before the change feed hears of the commit, while no other
// write transaction of this store can commit: it must not block or call
// the store.
func (tx *Tx) OnCommit(fn func()) { tx.onCommit = append(tx.onCommit, fn) }

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

// GetMany reads several auxiliary values at once (kv.Txn.GetMany).
func (tx *Tx) GetMany(keys [][]byte, fn func(i int, value []byte) error) error {
	full := make([][]byte, len(keys))
	for i, k := range keys {
		full[i] = auxKey(k)
	}
	return tx.txn.GetMany(full, fn)
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
