package mailbox

import (
	"errors"
	"fmt"
	"io"

	"certmail/kv"
)

// ErrNotEmpty is returned by Restore for a store that already holds data.
var ErrNotEmpty = errors.New("store is not empty")

// errNotBadger: Backup and Restore write and read Badger's backup format,
// which only a Badger store has.
var errNotBadger = errors.New("backup and restore need the embedded (Badger) store")

// Backup writes a consistent snapshot of the whole store to w, in Badger's
// backup format (certmail backups of format 1; backups are now written as
// kv.WriteStream, which every engine reads), and returns the version it is consistent at. It runs
// beside the server's transactions: Badger streams a read snapshot, so a
// delivery committing during the backup is either wholly in it or not at
// all, and writers are never blocked.
func (s *Store) Backup(w io.Writer) (uint64, error) {
	if s.bdb == nil {
		return 0, fmt.Errorf("backing up store: %w", errNotBadger)
	}
	v, err := s.bdb.Badger().Backup(w, 0)
	if err != nil {
		return 0, fmt.Errorf("backing up store: %w", err)
	}
	return v, nil
}

// Engine is the engine the store runs on, for whole-store streams
// (kv.WriteStream: backups and migrate). Callers only read it; every
// write goes through the store's transactions.
func (s *Store) Engine() kv.Engine { return s.db }

// Load creates the store from an engine-neutral stream (kv.WriteStream),
// in opts.Dir or on opts.Engine, syncs it and returns how many pairs it
// loaded. The store must be empty, as for Restore. On an error the target
// holds part of the stream and is to be discarded.
func Load(opts Options, r io.Reader) (int64, error) {
	if opts.InMemory {
		return 0, errors.New("load: an in-memory store cannot be loaded into")
	}
	opts.GCInterval = -1 // nothing to collect in a fresh store
	s, err := Open(opts)
	if err != nil {
		return 0, err
	}
	var n int64
	empty, err := kv.IsEmpty(s.db)
	if err == nil && !empty {
		err = fmt.Errorf("load into %s: %w", opts.Dir, ErrNotEmpty)
	}
	if err == nil {
		n, err = kv.Load(s.db, r)
	}
	if err == nil {
		err = s.Sync()
	}
	// No clean-close mark, as for Restore: the loaded store's first start
	// resumes every mailbox above the source's MODSEQ reserve (modseq.go).
	s.modseqDurable = false
	if cerr := s.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing loaded store: %w", cerr)
	}
	return n, err
}

// Restore creates the store in opts.Dir from a stream in Badger's backup
// format, written by Backup (certmail backups of format 1), and syncs it. The store must be new (a directory without data): loading
// over existing data would mix two histories. opts.EncryptionKey, if set,
// encrypts the restored files, whatever the source store used.
func Restore(opts Options, r io.Reader) error {
	if opts.InMemory {
		return errors.New("restore: an in-memory store cannot be restored into")
	}
	if opts.Engine != nil {
		return fmt.Errorf("restore: %w", errNotBadger)
	}
	opts.GCInterval = -1 // nothing to collect in a fresh store
	s, err := Open(opts)
	if err != nil {
		return err
	}
	empty, err := s.bdb.Empty()
	if err == nil && !empty {
		err = fmt.Errorf("restore into %s: %w", opts.Dir, ErrNotEmpty)
	}
	if err == nil {
		// 256 pending batches is Badger's own suggestion: enough to keep
		// the writer busy without holding the whole backup in memory.
		if lerr := s.bdb.Badger().Load(r, 256); lerr != nil {
			err = fmt.Errorf("loading backup: %w", lerr)
		}
	}
	if err == nil {
		err = s.Sync()
	}
	// No clean-close mark: the restored store's first start resumes every
	// mailbox above the backup's MODSEQ reserve, as after a crash
	// (modseq.go); and a transaction begun after Badger's Load would wait
	// for its read watermark for ever.
	s.modseqDurable = false
	if cerr := s.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing restored store: %w", cerr)
	}
	return err
}
