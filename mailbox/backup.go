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

// LoadOptions say how Load loads.
type LoadOptions struct {
	// Mark says who claims the target while the load runs (load.go).
	Mark LoadMark
	// DiscardIncomplete empties a target holding an earlier load that
	// did not finish, and only such a target, before loading.
	DiscardIncomplete bool
	// NewUIDValidity gives every loaded mailbox a new UIDVALIDITY, above
	// any the store had (a restore: see Store.newUIDValidities); without
	// it every pair is kept as it was (a migration of a live store).
	NewUIDValidity bool
	// Check, if set, is called with the pairs loaded once the stream is
	// in and whole, before the load is made whole: its error fails the
	// load.
	Check func(pairs int64) error
}

// LoadResult says what Load did.
type LoadResult struct {
	Pairs int64
	// Renumbered is set with LoadOptions.NewUIDValidity.
	Renumbered *Renumbered
}

// Load creates the store from an engine-neutral stream (kv.WriteStream),
// in opts.Dir or on opts.Engine, which must be empty. It is all or
// nothing (load.go): the target is marked incomplete until the whole
// stream is in, checked, renumbered (LoadOptions.NewUIDValidity) and
// synced; on an error what was written to a database (opts.Engine) is
// deleted again, and a data directory is the caller's to remove. Only if
// that fails too (the database went away) does the target keep part of
// the stream, and the mark, which makes Open refuse it; the error then
// says so (errors.Is(err, ErrIncomplete)).
func Load(opts Options, r io.Reader, lo LoadOptions) (*LoadResult, error) {
	if opts.InMemory {
		return nil, errors.New("load: an in-memory store cannot be loaded into")
	}
	opts.GCInterval = -1 // nothing to collect in a fresh store
	opts.Brief = true
	opts.FollowInterval = -1
	opts.loading = true
	s, err := Open(opts)
	if err != nil {
		return nil, err
	}
	res := &LoadResult{}
	err = BeginLoad(s.db, lo.Mark, lo.DiscardIncomplete)
	if err != nil {
		if errors.Is(err, ErrNotEmpty) {
			err = fmt.Errorf("load into %s: %w", opts.Dir, err)
		}
		s.modseqDurable = false
		s.Close()
		return nil, err
	}
	res.Pairs, err = kv.Load(s.db, r)
	if err == nil {
		// The input ends where the stream does: bytes after its digest
		// are damage (and a writer left blocked on them).
		var b [1]byte
		if n, rerr := io.ReadFull(r, b[:]); n > 0 {
			err = fmt.Errorf("loading stream: %w: bytes after its end", kv.ErrBadStream)
		} else if !errors.Is(rerr, io.EOF) {
			err = fmt.Errorf("loading stream: %w", rerr)
		}
	}
	if err == nil && lo.Check != nil {
		err = lo.Check(res.Pairs)
	}
	if err == nil && lo.NewUIDValidity {
		res.Renumbered, err = s.newUIDValidities()
	}
	if err == nil {
		err = s.Sync()
	}
	if err == nil {
		err = EndLoad(s.db)
	}
	// A Badger store is a directory of its own, which the caller removes
	// (marked, it opens nowhere meanwhile): deleting its records one by
	// one first would only take as long again.
	if err != nil && s.bdb == nil {
		if _, derr := DiscardLoad(s.db); derr != nil {
			err = fmt.Errorf("%w; and what was loaded could not be deleted (%v), so the target is marked: %w", err, derr, ErrIncomplete)
		}
	}
	// No clean-close mark, as for Restore: the loaded store's first start
	// resumes every mailbox above the source's MODSEQ reserve (modseq.go).
	s.modseqDurable = false
	if cerr := s.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing loaded store: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Restore creates the store in opts.Dir from a stream in Badger's backup
// format, written by Backup (certmail backups of format 1), and syncs it.
// The store must be new (a directory without data): loading over
// existing data would mix two histories. opts.EncryptionKey, if set,
// encrypts the restored files, whatever the source store used. The store
// is marked incomplete until the end, as by Load; lo.NewUIDValidity gives
// its mailboxes new UIDVALIDITYs. On an error the caller removes the
// directory (a Badger store is a directory of its own).
func Restore(opts Options, r io.Reader, lo LoadOptions) (*LoadResult, error) {
	if opts.InMemory {
		return nil, errors.New("restore: an in-memory store cannot be restored into")
	}
	if opts.Engine != nil {
		return nil, fmt.Errorf("restore: %w", errNotBadger)
	}
	opts.GCInterval = -1 // nothing to collect in a fresh store
	opts.Brief = true
	opts.loading = true
	s, err := Open(opts)
	if err != nil {
		return nil, err
	}
	empty, err := s.bdb.Empty()
	if err == nil && !empty {
		err = fmt.Errorf("restore into %s: %w", opts.Dir, ErrNotEmpty)
	}
	if err == nil {
		err = BeginLoad(s.db, lo.Mark, false)
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
	// for its read watermark for ever: what is left is done after opening
	// the store again.
	s.modseqDurable = false
	if cerr := s.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing restored store: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	if s, err = Open(opts); err != nil {
		return nil, err
	}
	res := &LoadResult{}
	if lo.Check != nil {
		err = lo.Check(0)
	}
	if err == nil && lo.NewUIDValidity {
		res.Renumbered, err = s.newUIDValidities()
	}
	if err == nil {
		err = s.Sync()
	}
	if err == nil {
		err = EndLoad(s.db)
	}
	s.modseqDurable = false
	if cerr := s.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing restored store: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}
