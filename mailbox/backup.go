package mailbox

import (
	"errors"
	"fmt"
	"io"
)

// ErrNotEmpty is returned by Restore for a store that already holds data.
var ErrNotEmpty = errors.New("store is not empty")

// errNotBadger: Backup and Restore write and read Badger's backup format,
// which only a Badger store has.
var errNotBadger = errors.New("backup and restore need the embedded (Badger) store")

// Backup writes a consistent snapshot of the whole store to w, in Badger's
// backup format, and returns the version it is consistent at. It runs
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

// Restore creates the store in opts.Dir from a stream written by Backup
// and syncs it. The store must be new (a directory without data): loading
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
	if cerr := s.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing restored store: %w", cerr)
	}
	return err
}
