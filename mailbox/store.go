package mailbox

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"certmail/kv"
	"certmail/kv/badgerkv"
)

// Options configure a Store.
type Options struct {
	// Dir is the data directory. Ignored when InMemory or Engine is set.
	Dir string
	// InMemory keeps the store in memory (tests): messages are then
	// limited to badgerkv.InMemoryMaxValue bytes.
	InMemory bool
	// Engine, when set, is the storage engine the store runs on, instead
	// of Badger in Dir; the store closes it on Close. Badger's own
	// upkeep (value-log GC, page trimming, the disk-space reserve) runs
	// only on the Badger store the store opens itself.
	Engine kv.Engine
	// EncryptionKey, when set (16, 24 or 32 bytes), encrypts the data files
	// at rest with Badger's AES encryption.
	EncryptionKey []byte
	Logger        *slog.Logger
	// Summarize computes derived data from a message once, at delivery
	// (for IMAP: envelope and body structure), stored beside the blob.
	Summarize func(raw []byte) []byte
	// GCInterval is how often value-log garbage collection runs; zero means
	// five minutes, negative disables it.
	GCInterval time.Duration
	// MaxMailboxes bounds the mailboxes of one account (config
	// limits.max_mailboxes); zero or more than MaxMailboxes means
	// MaxMailboxes.
	MaxMailboxes int
	// IndexIdle is how long a mailbox's in-memory index stays loaded
	// without being read; zero means ten minutes, negative forever. An
	// index costs about 150 bytes a message, and a server whose users come
	// and go would otherwise hold every mailbox ever opened.
	IndexIdle time.Duration
	// VanishedRetention is how many expunges each mailbox remembers for
	// QRESYNC's VANISHED (modseq.go); zero means
	// DefaultVanishedRetention. A client resynchronising from before the
	// oldest one kept still gets a correct, larger answer.
	VanishedRetention int
	// DiskReserve is the free space, in bytes, that new messages may not
	// use on the data directory's filesystem (config limits.disk_reserve;
	// see DefaultDiskReserve); zero means DefaultDiskReserve, negative no
	// check.
	DiskReserve int64
	// QuotaStorage (bytes) and QuotaMessages are the limits of an account
	// that has none of its own (config limits.quota_storage and
	// limits.quota_messages; quota.go); zero: no limit.
	QuotaStorage, QuotaMessages int64

	// FollowInterval is how often a store on an engine other processes
	// share (kv.Notifier: PostgreSQL) reads the change journal for other
	// nodes' commits when no wake-up came (follow.go); zero means
	// DefaultFollowInterval. Negative: the store publishes its own
	// changes but follows no one's (a one-off command).
	FollowInterval time.Duration
	// SoleLease lets a store that follows others, on an engine that can
	// say so (kv.SoleWriter: PostgreSQL), skip its catch-up reads while
	// no other process writes (barrier.go): a node alone, or the one
	// busy node of several, answers SELECT, STATUS and NOOP from memory.
	SoleLease bool

	// Brief opens the store for a short-lived command (`certmail
	// deliver` from an MTA's pipe, `user add`): only what reading and
	// writing need, none of a server's upkeep. No scan for orphaned
	// messages (a node, or serve, collects them when it starts: on a
	// shared store the scan reads every mailbox, a round trip each), no
	// index eviction, value-log GC or page trimming, and on a shared
	// engine no following (as FollowInterval < 0): its commits are still
	// published to the nodes.
	Brief bool

	// conflictPatience is how long UpdateFrom goes on running a
	// conflicting transaction again, once it has tried kv.MaxAttempts
	// times; zero means defaultConflictPatience, negative not at all
	// (tests).
	conflictPatience time.Duration
	// afterOrphanScan, if set, runs in Open between finding orphaned
	// messages and removing them (tests: another node writing then).
	afterOrphanScan func()
	// syncEvery is the period of the background sync; zero means a
	// second, negative none (crash tests, which decide when to sync).
	syncEvery time.Duration
	// loading opens a store that a load is writing (Load), which Open
	// otherwise refuses (load.go).
	loading bool
}

// Store is the durable message store. It is safe for concurrent use.
type Store struct {
	db kv.Engine
	// bdb is db when the store opened Badger itself (Options.Engine
	// unset): what only Badger needs (value-log GC, page trimming, its
	// backup format) runs only then.
	bdb       *badgerkv.DB
	log       *slog.Logger
	summarize func(raw []byte) []byte
	// maxMailboxes is Options.MaxMailboxes, resolved.
	maxMailboxes int
	// quotaStorage, quotaMessages: Options.QuotaStorage, QuotaMessages.
	quotaStorage, quotaMessages int64
	// vanishedRetention is Options.VanishedRetention, resolved.
	vanishedRetention int

	// wmu serializes every write transaction, so that commits, index
	// updates and change notifications share one order.
	wmu sync.Mutex
	// group gathers UpdateGrouped's updates into shared commits
	// (group.go).
	group groupCommit

	// shared: other stores may write the engine too (Options.Engine:
	// nodes on one PostgreSQL database), so committed state kept in
	// memory may be stale. A store that opened Badger itself is its only
	// writer: Badger locks its directory to one process (in memory, to
	// the store).
	shared bool

	idx *index
	// recs holds mailbox records on a store that follows other nodes
	// (reccache.go).
	recs *recordCache
	// modseqCache holds the committed MODSEQ state of mailboxes written
	// since Open (modseq.go): one writer at a time (wmu, and !shared)
	// makes it exact, and spares each change a read and a write of the
	// state. Unused when shared.
	msMu        sync.Mutex
	modseqCache map[mboxRef]modseqState
	// modseqReserve is R, the durable bound of the MODSEQs taken (see
	// modseq.go; written under wmu); modseqBase is what every mailbox's
	// MODSEQs start above after a crash (set in Open); modseqReserveStep
	// is modseqReserveStep, smaller in tests. Only a Badger store on disk
	// keeps them (modseqDurable is false).
	modseqReserve, modseqBase, modseqReserveStep uint64
	modseqDurable                                bool
	// afterOrphanScan is Options.afterOrphanScan.
	afterOrphanScan func()
	// conflictPatience is Options.conflictPatience, resolved.
	conflictPatience time.Duration
	// blobIDs is the store's lease of blob IDs (counters.go).
	blobIDs idLease
	// closed is set by Close, under wmu.
	closed bool
	auth   *authCache
	hooks  hookList
	// follow follows other nodes' commits (follow.go); nil when no other
	// process shares the engine.
	follow *follower

	listenersMu sync.RWMutex
	listeners   []func(Change)

	syncer *groupSyncer
	space  *spaceGuard
	stop   context.CancelFunc
	done   sync.WaitGroup
}

// Open opens (creating if needed) the store.
func Open(opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if !opts.InMemory && opts.Engine == nil {
		if err := PrepareDataDir(opts.Dir, logger); err != nil {
			return nil, err
		}
	}
	db := opts.Engine
	var bdb *badgerkv.DB
	if db == nil {
		var err error
		bdb, err = badgerkv.Open(badgerkv.Options{
			Dir:           opts.Dir,
			InMemory:      opts.InMemory,
			EncryptionKey: opts.EncryptionKey,
			Logger:        logger,
		})
		if err != nil {
			return nil, err
		}
		db = bdb
	}
	// Part of a restore or migration that did not finish is no store to
	// serve (load.go).
	if !opts.loading {
		if err := CheckComplete(db); err != nil {
			db.Close()
			return nil, fmt.Errorf("opening store: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	maxBoxes := opts.MaxMailboxes
	if maxBoxes <= 0 || maxBoxes > MaxMailboxes {
		maxBoxes = MaxMailboxes
	}
	s := &Store{
		db:                db,
		bdb:               bdb,
		shared:            bdb == nil,
		log:               logger,
		summarize:         opts.Summarize,
		maxMailboxes:      maxBoxes,
		quotaStorage:      max(opts.QuotaStorage, 0),
		quotaMessages:     max(opts.QuotaMessages, 0),
		vanishedRetention: cmp.Or(max(opts.VanishedRetention, 0), DefaultVanishedRetention),
		idx:               newIndex(),
		recs:              newRecordCache(),
		modseqCache:       make(map[mboxRef]modseqState),
		auth:              newAuthCache(),
		space:             newSpaceGuard(opts.Dir, opts.DiskReserve, bdb == nil || opts.InMemory, logger),
		stop:              cancel,
		afterOrphanScan:   opts.afterOrphanScan,
		conflictPatience:  cmp.Or(opts.conflictPatience, defaultConflictPatience),
	}
	s.syncer = newGroupSyncer(db.Sync)
	s.modseqReserveStep = modseqReserveStep
	s.modseqDurable = bdb != nil && !opts.InMemory
	if !s.modseqDurable {
		// Commits are durable when they return (or nothing survives):
		// no MODSEQ can be lost, so none need be reserved.
		s.modseqReserve = math.MaxUint64
	} else if err := s.openModSeqs(); err != nil {
		cancel()
		db.Close()
		return nil, fmt.Errorf("opening store in %q: %w", opts.Dir, err)
	}
	if !opts.Brief {
		if _, err := s.collectOrphanMessages(); err != nil {
			// Not fatal: the store is consistent for every mailbox that
			// exists; the next start tries again.
			logger.Error("collecting orphaned messages", "err", err)
		}
	}
	if n, ok := db.(kv.Notifier); ok {
		s.follow = newFollower(s, n, cmp.Or(max(opts.FollowInterval, 0), DefaultFollowInterval))
		if opts.FollowInterval >= 0 && !opts.Brief {
			s.follow.start(ctx)
			s.follow.barrier.on = true // CatchUp reads (barrier.go)
			if sw, ok := db.(kv.SoleWriter); ok && opts.SoleLease {
				sw.StartSole(ctx, []byte(prefixFeed))
				s.follow.sole = sw
			}
		}
	}
	gc := opts.GCInterval
	if gc == 0 {
		gc = 5 * time.Minute
	}
	onDisk := bdb != nil && !opts.InMemory
	if gc > 0 && onDisk && !opts.Brief {
		s.runEvery(ctx, gc, func() { s.collectValueLog(ctx) })
	}
	// Flag changes and expunges are not synced one by one (a lost flag is
	// not a lost message); a background sync bounds how much can be lost.
	if onDisk {
		if opts.syncEvery >= 0 {
			s.runEvery(ctx, cmp.Or(opts.syncEvery, time.Second), func() {
				if err := s.Sync(); err != nil {
					s.log.Warn("periodic sync", "err", err)
				}
			})
		}
		// Cold pages of the memory-mapped files go back to the kernel
		// (see trim_linux.go).
		if !opts.Brief {
			s.done.Add(1)
			go s.runTrim(ctx, opts.Dir)
		}
	}
	idle := opts.IndexIdle
	if idle == 0 {
		idle = 10 * time.Minute
	}
	if idle > 0 && !opts.Brief {
		s.runEvery(ctx, max(idle/4, time.Second), func() {
			if n := s.evictIdleIndexes(idle); n > 0 {
				s.log.Debug("mailbox indexes evicted", "count", n)
			}
		})
	}
	return s, nil
}

// Shared reports whether other stores may write the store's engine too
// (nodes on one PostgreSQL database): state a caller keeps in memory from
// the store may then be changed under it by another node.
func (s *Store) Shared() bool { return s.shared }

// runEvery runs fn every period in its own goroutine until ctx ends;
// Close waits for it.
func (s *Store) runEvery(ctx context.Context, period time.Duration, fn func()) {
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// Close syncs and closes the store. In-flight transactions finish first.
func (s *Store) Close() error {
	s.stop()
	s.done.Wait()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.bdb != nil {
		// Room for the last commit and Badger's memtable flush, however
		// full the disk is now (see badgerkv's headroom.go).
		if err := s.bdb.ReleaseHeadroom(); err != nil {
			s.log.Warn("closing the store", "err", err)
		}
	}
	if s.modseqDurable {
		if err := s.closeModSeqs(); err != nil {
			// Not fatal: the next Open takes this for a crash and skips
			// ahead (modseq.go).
			s.log.Error("marking the store closed cleanly", "err", err)
		}
	}
	return s.db.Close()
}

// Sync makes every transaction committed before the call durable. Calls
// made while a sync is in progress share the next one.
func (s *Store) Sync() error {
	return s.syncer.sync()
}

// collectValueLog rewrites value-log files that are at least half
// garbage, until there are none left.
func (s *Store) collectValueLog(ctx context.Context) {
	for ctx.Err() == nil {
		// A rewrite writes the live half of a file before the old one
		// goes: not on a nearly full disk (see DefaultDiskReserve).
		if err := s.space.forWrite(); err != nil {
			s.log.Debug("value log GC skipped", "err", err)
			return
		}
		done, err := s.bdb.CollectGarbage(0.5)
		if err != nil {
			s.log.Warn("value log GC", "err", err)
			return
		}
		if done {
			return
		}
		s.log.Debug("value log GC reclaimed a file")
	}
}
