package badgerkv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fileSyncer makes Badger's logs durable without Badger's DB.Sync, which
// is slower in two ways that every write of a busy server paid for:
//
//   - it holds Badger's memtable lock (read side) while it msyncs the
//     memtable's write-ahead log, and every commit takes that lock (write
//     side) to check for room in the memtable, so no commit could finish
//     while a sync ran: a flag change waited for a delivery's fsync;
//   - it syncs the write-ahead log and then the value log, one after
//     the other: two disk flushes in a row where the filesystem can do
//     them at once.
//
// Badger writes both logs through shared memory maps of the files, and
// a shared map's pages are the file's page cache: fdatasync on another
// descriptor of the same file writes them as msync would. So the syncer
// flushes, at once and without Badger's locks, every .mem (write-ahead
// log) and .vlog (value log) file that may hold a commit made since the
// previous sync: those that were newest then and every newer one. It also
// covers what Badger's own Sync misses: a log file that Badger stopped
// writing (memtable full, value log file full) between a commit and the
// sync, whose tail Badger's Sync never flushes.
type fileSyncer struct {
	dir string

	mu sync.Mutex
	// low is, per kind, the lowest file id that may hold unsynced
	// commits: the newest file at the last sync.
	low map[string]int
	// open keeps the descriptors of the files synced last time, so a
	// sync does not open them again.
	open map[string]*os.File
	// logs are the log files the directory held at its modification
	// time listedAt. Listing a directory of thousands of tables takes a
	// millisecond; its modification time changes whenever a file comes
	// or goes, so an unchanged time spares the listing. The time is
	// coarse (a clock tick), so a listing made within stableAfter of it
	// is not trusted for the next sync.
	logs     []string
	listedAt time.Time
}

const stableAfter = 2 * time.Second

// The files Badger writes commits to, by extension. Badger creates each
// new one with the next id and syncs the directory when it does (ristretto
// z.OpenMmapFile), so a new file's name is durable before it holds data.
var logKinds = []string{".mem", ".vlog"}

func newFileSyncer(dir string) *fileSyncer {
	return &fileSyncer{dir: dir, low: map[string]int{}, open: map[string]*os.File{}}
}

// sync flushes every log file that may hold a commit made before the call.
func (s *fileSyncer) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The listing comes after the call: any file a commit before the
	// call went to exists now, or was flushed to a table and deleted,
	// which Badger does only after syncing the table and the manifest.
	names, newest, err := s.list()
	if err != nil {
		return err
	}
	files := make([]*os.File, 0, len(names))
	keep := make(map[string]*os.File, len(names))
	for _, name := range names {
		f := s.open[name]
		if f == nil {
			f, err = os.Open(filepath.Join(s.dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // flushed to a table and deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("syncing store: %w", err)
			}
		}
		keep[name] = f
		files = append(files, f)
	}
	for name, f := range s.open {
		if keep[name] == nil {
			f.Close()
		}
	}
	s.open = keep
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i := 1; i < len(files); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fdatasync(files[i])
		}()
	}
	if len(files) > 0 {
		errs[0] = fdatasync(files[0])
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for ext, n := range newest {
		s.low[ext] = n
	}
	return nil
}

// list returns the log files to sync and the newest id of each kind.
func (s *fileSyncer) list() ([]string, map[string]int, error) {
	st, err := os.Stat(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("syncing store: %w", err)
	}
	mtime := st.ModTime()
	if s.logs == nil || !mtime.Equal(s.listedAt) || time.Since(mtime) < stableAfter {
		d, err := os.Open(s.dir)
		if err != nil {
			return nil, nil, fmt.Errorf("syncing store: %w", err)
		}
		all, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("syncing store: listing %s: %w", s.dir, err)
		}
		s.logs = s.logs[:0]
		for _, name := range all {
			if strings.HasSuffix(name, ".mem") || strings.HasSuffix(name, ".vlog") {
				s.logs = append(s.logs, name)
			}
		}
		s.listedAt = mtime
	}
	all := s.logs
	var out []string
	newest := map[string]int{}
	for _, name := range all {
		for _, ext := range logKinds {
			id, ok := strings.CutSuffix(name, ext)
			if !ok {
				continue
			}
			n, err := strconv.Atoi(id)
			if err != nil || n < s.low[ext] {
				continue
			}
			out = append(out, name)
			newest[ext] = max(newest[ext], n)
		}
	}
	return out, newest, nil
}

func (s *fileSyncer) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.open {
		f.Close()
	}
	s.open = nil
}
