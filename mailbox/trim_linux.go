//go:build linux

package mailbox

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Badger reads and writes its value log and tables through memory maps,
// so every message written or read since the start stays in the process's
// resident set as file-backed pages: with 100,000 messages stored and
// searched, two thirds of certmail's RSS was its own mail files, which a
// server reading files with read(2), like Dovecot, holds in the page cache
// instead. The trimmer gives back the pages of mapped data files that
// have not been touched for a trim period: madvise(MADV_PAGEOUT) reclaims
// them (writing back any that are dirty, so nothing is lost) and they are
// read back from the file when next needed. It only ever advises; a
// mapping that Badger replaced in the meantime is, at worst, paged out.

const trimEvery = 10 * time.Second

// trimMinKB: below this much resident mapped data nothing is done.
var trimMinKB int64 = 32 << 10

const madvPageout = 21 // MADV_PAGEOUT, Linux 5.4

func (s *Store) runTrim(ctx context.Context, dir string) {
	defer s.done.Done()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	mapped := true
	cold := make(map[string]int)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		releaseFreeHeap()
		if mapped {
			n, err := trimMapped(abs+"/", cold)
			if err != nil {
				s.log.Debug("trimming mapped files", "err", err)
				mapped = false // no /proc, or no MADV_PAGEOUT
			} else if n > 0 {
				s.log.Debug("returned cold mapped pages", "kB", n)
			}
		}
	}
}

// heapFreeMax is how much free heap memory may stay unreturned to the
// system: Badger's compactions and a burst of deliveries or logins grow
// the heap by hundreds of MB for seconds, and the runtime gave it back so
// slowly that 30 s later three quarters of the RSS was free heap.
const heapFreeMax = 64 << 20

var heapFree = []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}

// releaseFreeHeap returns free heap memory to the system when there is
// much of it (a forced collection every trim period at most).
func releaseFreeHeap() {
	metrics.Read(heapFree)
	if heapFree[0].Value.Kind() == metrics.KindUint64 && heapFree[0].Value.Uint64() > heapFreeMax {
		debug.FreeOSMemory()
	}
}

// mapping is one memory map of a file under the data directory.
type mapping struct {
	key             string // address range and file
	start, end      uintptr
	rssKB, refKB    int64
	underDir, valid bool
}

// coldPasses is how many passes in a row a mapping must go untouched
// before it is paged out: 10 to 20 s with trimEvery, so that mail being
// read now, or a search being repeated, stays in memory.
const coldPasses = 2

// trimMapped pages out the mappings of files under dir that hold
// resident pages none of which was referenced for coldPasses calls in a
// row (counted in cold, by mapping), then clears the referenced bits for
// the next call. It returns the kB advised away.
func trimMapped(dir string, cold map[string]int) (int64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	var maps []mapping
	var cur mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if i := bytes.IndexByte(line, ' '); i > 0 && bytes.IndexByte(line[:i], '-') > 0 && line[i-1] != ':' {
			if cur.valid && cur.underDir {
				maps = append(maps, cur)
			}
			cur = mapping{}
			fields := strings.Fields(string(line))
			lo, hi, _ := strings.Cut(fields[0], "-")
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			cur.valid = err1 == nil && err2 == nil && b > a
			cur.start, cur.end = uintptr(a), uintptr(b)
			cur.underDir = len(fields) >= 6 && strings.HasPrefix(fields[5], dir)
			if cur.underDir {
				cur.key = fields[0] + " " + fields[5]
			}
			continue
		}
		if !cur.underDir {
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("Rss:")); ok {
			cur.rssKB = kB(v)
		} else if v, ok := bytes.CutPrefix(line, []byte("Referenced:")); ok {
			cur.refKB = kB(v)
		}
	}
	f.Close()
	if cur.valid && cur.underDir {
		maps = append(maps, cur)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	var total, trimmed int64
	live := make(map[string]bool, len(maps))
	for _, m := range maps {
		total += m.rssKB
		live[m.key] = true
		if m.refKB > 0 {
			cold[m.key] = 0
		} else {
			cold[m.key]++
		}
	}
	for k := range cold {
		if !live[k] {
			delete(cold, k) // unmapped
		}
	}
	if total >= trimMinKB {
		for _, m := range maps {
			if m.rssKB == 0 || cold[m.key] < coldPasses {
				continue
			}
			if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, madvPageout); errno != 0 {
				if errno == syscall.EINVAL {
					return trimmed, errno // a kernel without MADV_PAGEOUT
				}
				continue
			}
			trimmed += m.rssKB
		}
	}
	// Referenced bits from now on tell what the next call may take.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("1"), 0); err != nil {
		return trimmed, err
	}
	return trimmed, nil
}

func kB(v []byte) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(v)), "kB")), 10, 64)
	return n
}
