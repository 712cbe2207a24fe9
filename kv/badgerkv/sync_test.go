package badgerkv_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"certmail/kv"
	"certmail/kv/badgerkv"
)

// newestLog returns the newest file with the extension in dir.
func newestLog(t testing.TB, dir, ext string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ext) && e.Name() > last {
			last = e.Name()
		}
	}
	return last
}

// TestSyncCoversRotatedLog: a commit written to a memtable log that Badger
// then stopped writing (the memtable filled up) before the sync is still
// flushed by that sync. Badger's own Sync flushes only the current log.
func TestSyncCoversRotatedLog(t *testing.T) {
	dir := t.TempDir()
	db, err := badgerkv.Open(badgerkv.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := kv.Update(db, func(tx kv.Txn) error { return tx.Set([]byte("acked"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	held := newestLog(t, dir, ".mem")
	// Small values stay in the memtable (and its log): 12 MB of them
	// fill the 8 MB memtable, and Badger moves on to a new log.
	val := make([]byte, 512)
	for i := 0; newestLog(t, dir, ".mem") == held; i++ {
		if i > 100_000 {
			t.Fatal("the memtable log never changed")
		}
		err := kv.Update(db, func(tx kv.Txn) error {
			for j := range 100 {
				if err := tx.Set(fmt.Appendf(nil, "k%08d-%03d", i, j), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	synced := db.SyncedFiles()
	_, statErr := os.Stat(dir + "/" + held)
	t.Logf("%s still there: %v; synced %v", held, statErr == nil, synced)
	if statErr == nil && !slices.Contains(synced, held) {
		t.Errorf("the sync flushed %v, not %s, which holds an acknowledged commit", synced, held)
	}
	if newest := newestLog(t, dir, ".mem"); !slices.Contains(synced, newest) {
		t.Errorf("the sync flushed %v, not the current log %s", synced, newest)
	}
	if v := newestLog(t, dir, ".vlog"); !slices.Contains(synced, v) {
		t.Errorf("the sync flushed %v, not the value log %s", synced, v)
	}
}

// BenchmarkCommitWhileSyncing: deliveries (a 16 KB value, then a sync;
// the operation timed) while another goroutine makes small commits (flag
// changes) every 200 µs; the metrics are the syncs per second and a small
// commit's average time. With Badger's own Sync a commit cannot finish
// while the memtable's log is being flushed, nor can the sync flush both
// logs at once.
func BenchmarkCommitWhileSyncing(b *testing.B) {
	for _, mode := range []string{"certmail", "badger"} {
		b.Run(mode, func(b *testing.B) {
			db, err := badgerkv.Open(badgerkv.Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			syncFn := db.Sync
			if mode == "badger" {
				syncFn = db.SyncWithBadger
			}
			var stop atomic.Bool
			var wg sync.WaitGroup
			var commits atomic.Int64
			var spent atomic.Int64
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					t0 := time.Now()
					if err := kv.Update(db, func(tx kv.Txn) error { return tx.Set(fmt.Appendf(nil, "f%d", i%1000), []byte("flags")) }); err != nil {
						b.Error(err)
						return
					}
					spent.Add(int64(time.Since(t0)))
					commits.Add(1)
					time.Sleep(200 * time.Microsecond)
				}
			}()
			msg := make([]byte, 16<<10)
			b.ResetTimer()
			for i := range b.N {
				if err := kv.Update(db, func(tx kv.Txn) error { return tx.Set(fmt.Appendf(nil, "m%d", i), msg) }); err != nil {
					b.Fatal(err)
				}
				if err := syncFn(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			stop.Store(true)
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "syncs/s")
			b.ReportMetric(float64(spent.Load())/float64(max(commits.Load(), 1))/1e3, "µs/commit")
		})
	}
}

// TestCloseHeadroom: an open store keeps a file of allocated blocks that
// its Close removes before Badger's memtable flush needs the space (the
// full-disk case itself: interop TestDiskFullAtShutdown).
func TestCloseHeadroom(t *testing.T) {
	dir := t.TempDir()
	db, err := badgerkv.Open(badgerkv.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir+"/.close-headroom", &st); err != nil {
		t.Fatalf("no headroom file while open: %v", err)
	}
	if got := st.Blocks * 512; got < 16<<20 {
		t.Errorf("headroom holds %d bytes of disk, want at least the memtable log's 16 MiB", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + "/.close-headroom"); !os.IsNotExist(err) {
		t.Errorf("headroom file after Close: %v", err)
	}
}
