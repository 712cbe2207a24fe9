package mailbox

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mappedRSS is the resident kB of the process's mappings of files under dir.
func mappedRSS(t *testing.T, dir string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps")
	}
	var total int64
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = len(f) >= 6 && strings.HasPrefix(f[5], dir)
			continue
		}
		if in && len(f) >= 2 && f[0] == "Rss:" {
			total += kB([]byte(f[1]))
		}
	}
	return total
}

func TestTrimMappedFiles(t *testing.T) {
	old := trimMinKB
	trimMinKB = 1
	defer func() { trimMinKB = old }()
	dir := t.TempDir()
	dir, _ = filepath.EvalSymlinks(dir)
	s, err := Open(Options{Dir: dir, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateAccount("t", "pw", DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KB
	var blobs []uint64
	for i := 0; i < 200; i++ {
		raw := append([]byte(fmt.Sprintf("Subject: %d\r\n\r\n", i)), body...)
		if err := s.Update(func(tx *Tx) error {
			res, err := tx.Append("t", "INBOX", raw, AppendOptions{})
			if err == nil {
				blobs = append(blobs, res.Blob)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	before := mappedRSS(t, dir)
	if before < 8<<10 {
		t.Skipf("only %d kB of mapped files resident: nothing to test", before)
	}
	// The first pass only clears the referenced bits (everything was
	// just written); the next ones find the pages cold, and after
	// coldPasses of them give them back.
	cold := make(map[string]int)
	if _, err := trimMapped(dir+"/", cold); err != nil {
		t.Skipf("trimming unsupported here: %v", err)
	}
	var n int64
	for i := 0; i < coldPasses; i++ {
		if n != 0 {
			t.Fatalf("pass %d paged out %d kB before the pages were cold for %d passes", i+2, n, coldPasses)
		}
		var err error
		if n, err = trimMapped(dir+"/", cold); err != nil {
			t.Fatal(err)
		}
	}
	after := mappedRSS(t, dir)
	t.Logf("mapped RSS %d kB, advised %d kB, then %d kB", before, n, after)
	if n == 0 || after >= before/2 {
		t.Fatalf("mapped RSS %d kB -> %d kB after trimming (advised %d kB)", before, after, n)
	}
	// Every message reads back whole.
	for i, id := range blobs {
		raw, err := s.Raw(id)
		if err != nil || !bytes.HasSuffix(raw, body) || !bytes.HasPrefix(raw, []byte(fmt.Sprintf("Subject: %d\r\n", i))) {
			t.Fatalf("message %d after trimming: %d bytes, %v", i, len(raw), err)
		}
	}
}
