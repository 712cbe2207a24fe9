// Package badgerkv is the embedded kv engine: Badger, one process on one
// data directory, certmail's default. Badger-specific tuning (memory
// profile, encryption at rest, value-log garbage collection) lives here;
// what the mailbox store keeps in it is the store's business.
package badgerkv

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"certmail/kv"
)

// ErrWrongKey: the store was written with another encryption key, or
// with none, or is encrypted and no key was given. The words are for an
// operator: Badger's own ("Encryption key mismatch") do not say what was
// done wrong.
var ErrWrongKey = errors.New("the encryption key does not match the one the data directory was written with (wrong encryption_key_file, or encryption turned on or off after the directory was created)")

// Options configure Open.
type Options struct {
	// Dir is the data directory. Ignored when InMemory is set.
	Dir string
	// InMemory keeps everything in memory, for tests: values are then
	// limited to InMemoryMaxValue bytes (there is no value log).
	InMemory bool
	// EncryptionKey, when set (16, 24 or 32 bytes), encrypts the data
	// files at rest with Badger's AES encryption.
	EncryptionKey []byte
	Logger        *slog.Logger
}

// InMemoryMaxValue is the largest value an in-memory store keeps: one
// below Badger's largest ValueThreshold, values being kept beside their
// keys (at the threshold, Badger would point into a value log there is
// not).
const InMemoryMaxValue = 1<<20 - 1

// memTableSize is the size of Badger's memtable; its log is twice that.
const memTableSize = 8 << 20

// DB is a Badger store; it implements kv.Engine.
type DB struct {
	db       *badger.DB
	inMemory bool
	dir      string
	log      *slog.Logger
	// files syncs the logs for Sync (sync.go); nil in memory.
	files *fileSyncer
}

var _ kv.Engine = (*DB)(nil)

// Open opens (creating if needed) the Badger store in opts.Dir.
func Open(opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	bopts := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithLogger(badgerLogger{logger}).
		// A small-memory profile: Badger's defaults reserve hundreds of MB
		// for memtables and caches, too much for a mail server that mostly
		// idles. Message bodies go to the value log (ValueThreshold), so the
		// LSM tree holds only small records and stays cheap to scan.
		WithMemTableSize(memTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(8 << 20).
		WithNumCompactors(2).
		WithBlockCacheSize(16 << 20).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(128 << 20).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		// Durability is Sync's: the mailbox store group-commits, so that
		// concurrent deliveries share one fsync instead of one each.
		WithSyncWrites(false)
	if opts.InMemory {
		bopts = bopts.WithValueThreshold(InMemoryMaxValue + 1)
	}
	if len(opts.EncryptionKey) > 0 {
		bopts = bopts.WithEncryptionKey(opts.EncryptionKey).WithIndexCacheSize(8 << 20)
	}
	db, err := badger.Open(bopts)
	if err != nil {
		if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
			return nil, fmt.Errorf("opening store in %q: %w", opts.Dir, ErrWrongKey)
		}
		return nil, fmt.Errorf("opening store in %q: %w", opts.Dir, err)
	}
	d := &DB{db: db, inMemory: opts.InMemory, dir: opts.Dir, log: logger}
	if !opts.InMemory {
		d.files = newFileSyncer(opts.Dir)
		if err := makeHeadroom(opts.Dir); err != nil {
			// Not fatal: the store works, but closing it on a full disk
			// could crash (see headroom.go).
			logger.Warn("no headroom for closing the store on a full disk", "err", err)
		}
	}
	return d, nil
}

// Badger returns the underlying Badger database, for what only Badger
// has (its own backup format).
func (d *DB) Badger() *badger.DB { return d.db }

// Begin implements kv.Engine.
func (d *DB) Begin(writable bool) (kv.Txn, error) {
	t := d.db.NewTransaction(writable)
	if d.inMemory {
		return memTxn{txn{t}}, nil
	}
	// A txn is one pointer, stored in the interface as is: no
	// allocation per transaction.
	return txn{t}, nil
}

// Sync implements kv.Engine: Badger runs without a sync per commit, and
// the logs are synced here rather than by Badger's own Sync (see sync.go).
func (d *DB) Sync() error {
	if d.files == nil {
		return nil
	}
	return d.files.sync()
}

// Close implements kv.Engine.
func (d *DB) Close() error {
	if err := d.ReleaseHeadroom(); err != nil {
		d.log.Warn("closing the store", "err", err)
	}
	err := d.db.Close()
	if d.files != nil {
		d.files.close()
	}
	return err
}

// Dump implements kv.Engine, from one read snapshot.
func (d *DB) Dump(fn func(key, value []byte) error) error {
	err := d.db.View(func(t *badger.Txn) error {
		return txn{t}.Scan(kv.Range{}, fn)
	})
	return err
}

// CollectGarbage rewrites one value-log file that is at least ratio
// garbage; done is true when there was none to rewrite.
func (d *DB) CollectGarbage(ratio float64) (done bool, err error) {
	err = d.db.RunValueLogGC(ratio)
	if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
		return true, nil
	}
	return false, err
}

// Empty reports whether the store holds no pairs.
func (d *DB) Empty() (bool, error) {
	empty := true
	err := d.db.View(func(t *badger.Txn) error {
		it := t.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	return empty, err
}

type txn struct{ t *badger.Txn }

// memTxn is a transaction of an in-memory store, which bounds values.
type memTxn struct{ txn }

func (x txn) Get(key, dst []byte) ([]byte, error) {
	item, err := x.t.Get(key)
	if err != nil {
		return nil, mapErr(err)
	}
	v, err := item.ValueCopy(dst[:0])
	if err != nil {
		return nil, mapErr(err)
	}
	return v, nil
}

func (x txn) GetFunc(key []byte, fn func(value []byte) error) error {
	item, err := x.t.Get(key)
	if err != nil {
		return mapErr(err)
	}
	return item.Value(fn)
}

// GetMany is GetFunc for each key: Badger reads are local, and no
// cheaper together.
func (x txn) GetMany(keys [][]byte, fn func(i int, value []byte) error) error {
	for i, k := range keys {
		item, err := x.t.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return mapErr(err)
		}
		if err := item.Value(func(v []byte) error { return fn(i, v) }); err != nil {
			if errors.Is(err, kv.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// ErrValueTooBig: a value above InMemoryMaxValue for an in-memory store.
var ErrValueTooBig = errors.New("value too big for an in-memory store")

func (x txn) Set(key, value []byte) error { return mapErr(x.t.Set(key, value)) }

func (x memTxn) Set(key, value []byte) error {
	if len(value) > InMemoryMaxValue {
		// Badger itself would panic at exactly its threshold.
		return fmt.Errorf("writing %d bytes: %w", len(value), ErrValueTooBig)
	}
	return x.txn.Set(key, value)
}

func (x txn) Delete(key []byte) error { return mapErr(x.t.Delete(key)) }

func (x txn) Commit() error { return mapErr(x.t.Commit()) }

func (x txn) Discard() { x.t.Discard() }

func (x txn) Scan(r kv.Range, fn func(key, value []byte) error) error {
	lo, hi := r.Bounds()
	if hi != nil && bytes.Compare(lo, hi) >= 0 {
		return nil
	}
	opts := badger.DefaultIteratorOptions
	if !r.Reverse {
		// Badger's Prefix picks the tables to read, and its Valid
		// stops at the first key without it: right going forward. In
		// reverse, Seek(hi) may land on hi itself, outside the prefix,
		// so the bounds are checked here instead.
		opts.Prefix = r.Prefix
	}
	opts.PrefetchValues = !r.KeysOnly
	opts.PrefetchSize = 64
	if r.Limit > 0 && r.Limit < opts.PrefetchSize {
		opts.PrefetchSize = r.Limit
	}
	opts.Reverse = r.Reverse
	it := x.t.NewIterator(opts)
	defer it.Close()
	n := 0
	if r.Reverse {
		// In reverse, Seek finds the last key at or before its
		// argument; hi itself is excluded below.
		if hi != nil {
			it.Seek(hi)
		} else {
			it.Rewind()
		}
	} else {
		it.Seek(lo)
	}
	for ; it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if r.Reverse {
			if hi != nil && bytes.Compare(k, hi) >= 0 {
				continue
			}
			if bytes.Compare(k, lo) < 0 {
				break
			}
		} else if hi != nil && bytes.Compare(k, hi) >= 0 {
			break
		}
		var err error
		if r.KeysOnly {
			err = fn(k, nil)
		} else {
			err = item.Value(func(v []byte) error { return fn(k, v) })
		}
		if err != nil {
			if errors.Is(err, kv.ErrStop) {
				return nil
			}
			return err
		}
		if n++; r.Limit > 0 && n >= r.Limit {
			return nil
		}
	}
	return nil
}

// mapErr puts Badger's errors in kv's terms.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return kv.ErrNotFound
	case errors.Is(err, badger.ErrConflict):
		return fmt.Errorf("%w: %w", kv.ErrConflict, err)
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("%w: %w", kv.ErrTooBig, err)
	case errors.Is(err, badger.ErrReadOnlyTxn):
		return fmt.Errorf("%w: %w", kv.ErrReadOnly, err)
	}
	return err
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {}
