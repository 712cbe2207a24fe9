package mailbox

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// ErrDiskFull: the filesystem of the data directory has less free space
// than the store keeps in reserve. New mail is refused until space
// returns; reads go on. Each edge says so in its protocol (LMTP 452
// 4.3.1, IMAP NO [OVERQUOTA], HTTP 507, EX_TEMPFAIL).
var ErrDiskFull = errors.New("the mail store's disk is full")

// DefaultDiskReserve is the free space kept when Options.DiskReserve is
// zero. Badger writes its value log and tables through memory maps, and a
// write fault on a full filesystem is SIGBUS, not an error: the process
// dies. Half the reserve stays free even for small writes (flags,
// evidence, timers), which leaves room for what Badger writes on its own:
// a memtable flush (8 MiB), compactions, and value-log GC rewriting the
// live half of a 128 MiB file.
const DefaultDiskReserve = 256 << 20

// spaceGuard decides whether a write fits on the disk. It asks the
// filesystem each time (statfs costs about a microsecond), so the store
// recovers by itself as soon as space is freed.
type spaceGuard struct {
	dir string
	// reserve is the free space new messages may not use; negative: no
	// check.
	reserve int64
	log     *slog.Logger
	// low remembers whether free space was last seen below the reserve,
	// so that going low and recovering are logged once each.
	low atomic.Bool
}

func newSpaceGuard(dir string, reserve int64, inMemory bool, log *slog.Logger) *spaceGuard {
	if inMemory || reserve < 0 {
		return &spaceGuard{reserve: -1, log: log}
	}
	if reserve == 0 {
		reserve = DefaultDiskReserve
	}
	return &spaceGuard{dir: dir, reserve: reserve, log: log}
}

// check returns ErrDiskFull unless writing n more bytes leaves at least
// keep bytes free.
func (g *spaceGuard) check(n, keep int64) error {
	if g.reserve < 0 {
		return nil
	}
	free, err := freeSpace(g.dir)
	if err != nil {
		// Not knowing is no reason to refuse mail; Badger reports real
		// write errors itself.
		g.log.Debug("checking free disk space", "dir", g.dir, "err", err)
		return nil
	}
	if free < 0 {
		return nil // no statfs on this platform
	}
	low := free < g.reserve
	if low != g.low.Swap(low) {
		if low {
			g.log.Warn("disk nearly full: refusing new mail until space is freed (limits.disk_reserve)",
				"dir", g.dir, "free", free, "reserve", g.reserve)
		} else {
			g.log.Info("disk space recovered: accepting mail again", "dir", g.dir, "free", free, "reserve", g.reserve)
		}
	}
	if free-n < keep {
		return fmt.Errorf("%w: %d bytes free in %s, %d needed (%d for the write, %d kept in reserve: limits.disk_reserve)",
			ErrDiskFull, free, g.dir, n+keep, n, keep)
	}
	return nil
}

// forMessage is the check for a new message of n bytes: it must leave the
// whole reserve free.
func (g *spaceGuard) forMessage(n int64) error { return g.check(n, g.reserve) }

// forWrite is the check for any write transaction: the lower half of the
// reserve is kept for Badger's own work (see DefaultDiskReserve).
func (g *spaceGuard) forWrite() error { return g.check(0, g.reserve/2) }

// CheckSpace returns an error wrapping ErrDiskFull when a message of size
// bytes would not fit beside the reserve. Edges call it before receiving
// a message (LMTP MAIL FROM) to refuse early; every message stored is
// checked again when it is written.
func (s *Store) CheckSpace(size int64) error { return s.space.forMessage(max(size, 0)) }
