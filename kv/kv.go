// Package kv is certmail's storage seam: an ordered, transactional
// key-value engine beneath the mailbox store. Everything certmail keeps
// (accounts, mailboxes, messages, timers, evidence, the outbox) is pairs of
// byte strings in one key space, read and written in transactions. Engines
// implement it in packages of their own: kv/badgerkv embeds Badger (the
// default, one process on one directory); a PostgreSQL engine keeps the
// pairs as bytea rows, so that several nodes can share one database. The
// conformance suite in kv/kvtest says, by test, what an engine must do.
//
// Keys sort bytewise (as bytes.Compare, as PostgreSQL's bytea). Which
// package owns which key prefix is recorded in one place, the mailbox
// package's key registry.
package kv

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"time"
)

// Errors every engine reports in these terms (wrapped, test with
// errors.Is), so that callers need not know which engine they run on.
var (
	// ErrNotFound: the key has no value.
	ErrNotFound = errors.New("kv: key not found")
	// ErrConflict: the transaction conflicted with another that committed
	// first (Badger's optimistic conflict detection; PostgreSQL's
	// serialization failure, SQLSTATE 40001, or deadlock, 40P01). Nothing
	// it wrote is kept. The caller discards the transaction and runs the
	// whole of it again, from its first read: Update does that.
	ErrConflict = errors.New("kv: transaction conflict")
	// ErrTooBig: the transaction holds more writes than the engine takes
	// in one commit (Badger bounds a transaction by its memtable size).
	// Callers that write without bound work in batches.
	ErrTooBig = errors.New("kv: transaction too big")
	// ErrReadOnly: a write in a read-only transaction.
	ErrReadOnly = errors.New("kv: write in a read-only transaction")
	// ErrStop, returned by a Scan or Dump callback, ends the scan early;
	// Scan then returns nil.
	ErrStop = errors.New("kv: stop scan")
)

// MaxKeySize is the longest key every engine must take. PostgreSQL's
// B-tree refuses index entries above about 2,700 bytes, so a bytea
// primary key cannot be much longer; Badger takes 65,000.
const MaxKeySize = 2048

// Engine is an opened store.
type Engine interface {
	// Begin starts a transaction. A read-only transaction sees one
	// snapshot: commits made after its first read are invisible to it.
	// A writable transaction also sees its own writes, and commits only
	// if no transaction that committed after its snapshot wrote a key it
	// read (serializable); otherwise Commit, or any earlier call,
	// returns ErrConflict. The caller must end every transaction with
	// Commit or Discard.
	Begin(writable bool) (Txn, error)
	// Sync makes every transaction committed before the call durable.
	// An engine whose commits are durable when Commit returns
	// (PostgreSQL with synchronous_commit on) returns nil at once;
	// Badger, run without a sync per commit, fsyncs here.
	Sync() error
	// Dump calls fn for every pair in the store, in key order, from one
	// consistent snapshot: a transaction committing meanwhile is wholly
	// in it or not at all, and writers are not blocked. It is the
	// engine-neutral backup stream. key and value are valid only during
	// the call. fn returning ErrStop ends it early (Dump returns nil).
	Dump(fn func(key, value []byte) error) error
	// Close releases the engine. Transactions must have ended.
	Close() error
}

// Txn is a transaction. It is not safe for concurrent use.
//
// Slices the engine passes to a callback are valid only during that
// call: copy what must outlive it. Slices passed to Set and Delete may be
// kept by the engine until the transaction ends (Badger keeps them
// without copying): the caller must not change them until then.
type Txn interface {
	// Get appends the value of key to dst[:0] and returns it, or
	// ErrNotFound. Passing a buffer to reuse spares an allocation.
	Get(key, dst []byte) ([]byte, error)
	// GetFunc calls fn with the value of key, without copying it, or
	// returns ErrNotFound without calling fn. fn must not keep value,
	// nor take long (Badger holds its value-log file open for reading
	// meanwhile).
	GetFunc(key []byte, fn func(value []byte) error) error
	// GetMany reads several keys at once: it calls fn(i, value) for
	// each keys[i] that has a value (the transaction's own writes
	// included), once per index, in no set order, and not at all for a
	// key without one. It reads what as many GetFunc calls would, in
	// fewer round trips where a read is one (PostgreSQL: one statement
	// for the lot), so a caller that knows several keys it will need
	// asks for them together. value is valid only during the call. fn
	// returning ErrStop ends it and GetMany returns nil; any other error
	// ends it and is returned. Like Scan, it must not be written to
	// from fn.
	GetMany(keys [][]byte, fn func(i int, value []byte) error) error
	// Set writes value under key; an empty value is a value, not a
	// delete. Keys must not be empty.
	Set(key, value []byte) error
	// Delete removes key; deleting a key that has no value is not an
	// error.
	Delete(key []byte) error
	// Scan calls fn for the pairs in r, in key order (descending when
	// r.Reverse), the transaction's own writes included. fn returning
	// ErrStop ends the scan and Scan returns nil; any other error ends
	// it and is returned. The transaction must not be written to while
	// a scan runs (from fn).
	Scan(r Range, fn func(key, value []byte) error) error
	// Commit makes the writes visible to later transactions, or returns
	// an error and keeps none of them (ErrConflict: run it again).
	// Committing a read-only transaction only ends it.
	Commit() error
	// Discard ends the transaction without keeping its writes. It may
	// be called after Commit, where it does nothing (defer it).
	Discard()
}

// Range selects keys for Scan: those that start with Prefix and lie in
// [Start, End). Start and End outside the prefix are clipped to it.
type Range struct {
	Prefix []byte
	// Start is the first key, inclusive; nil: the first key with Prefix.
	Start []byte
	// End is the bound, exclusive; nil: past the last key with Prefix.
	End []byte
	// Reverse scans from the highest key down.
	Reverse bool
	// KeysOnly passes nil values: the engine need not read them (Badger
	// then touches only its LSM tree, not the value log).
	KeysOnly bool
	// Limit stops after this many pairs; zero or less: no limit.
	Limit int
	// Expect says the caller means to read about this many pairs, or
	// the whole range if fewer: an engine that fetches a scan in pages
	// (PostgreSQL) makes its first page that large, in one round trip,
	// where it would otherwise start small in case the caller stops
	// early. Zero: no hint. It changes no result.
	Expect int
}

// Prefix is the Range of every key that starts with p.
func Prefix(p []byte) Range { return Range{Prefix: p} }

// Bounds returns the Range's effective bounds: every key k it selects has
// lo <= k and, unless hi is nil, k < hi. Engines that scan by bounds
// (PostgreSQL: key >= lo AND key < hi) use it; lo is never nil.
func (r Range) Bounds() (lo, hi []byte) {
	lo = r.Prefix
	if bytes.Compare(r.Start, lo) > 0 {
		lo = r.Start
	}
	if lo == nil {
		lo = []byte{}
	}
	hi = PrefixEnd(r.Prefix)
	if r.End != nil && (hi == nil || bytes.Compare(r.End, hi) < 0) {
		hi = r.End
	}
	return lo, hi
}

// PrefixEnd returns the least key greater than every key that starts with
// p, or nil if there is none (p empty or all 0xff bytes).
func PrefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// MaxAttempts is how many times Update and View run a transaction that
// keeps conflicting before they give up and return the ErrConflict.
const MaxAttempts = 20

// Update runs fn in a writable transaction and commits it if fn returns
// nil, running it again (up to MaxAttempts times) while it conflicts. fn
// must therefore have no effect outside the transaction, or only effects
// that may repeat.
func Update(e Engine, fn func(Txn) error) error { return run(e, true, fn) }

// View runs fn in a read-only transaction, again if it conflicts (some
// engines abort serializable readers too).
func View(e Engine, fn func(Txn) error) error { return run(e, false, fn) }

func run(e Engine, writable bool, fn func(Txn) error) error {
	var err error
	for attempt := range MaxAttempts {
		if attempt > 0 {
			time.Sleep(Backoff(attempt))
		}
		err = runOnce(e, writable, fn)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return err
}

// Backoff is how long to wait before running a transaction again after
// its attempt-th conflict: a random time up to an exponentially growing,
// bounded ceiling (0.5 ms, 1 ms, ... 50 ms). Without it, writers of one
// hot key that run again at once keep meeting each other: on PostgreSQL
// under load, three goroutines incrementing one counter failed 20 times
// in a row. The randomness spreads them apart; the bound keeps a
// transaction's worst case near a second.
func Backoff(attempt int) time.Duration {
	const base, ceiling = 500 * time.Microsecond, 50 * time.Millisecond
	d := ceiling
	if attempt < 10 && base<<(attempt-1) < ceiling {
		d = base << (attempt - 1)
	}
	return time.Duration(rand.Int64N(int64(d))) + 1
}

func runOnce(e Engine, writable bool, fn func(Txn) error) error {
	txn, err := e.Begin(writable)
	if err != nil {
		return err
	}
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return err
	}
	return txn.Commit()
}
