//go:build unix

package mailbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPrepareDataDir: a missing directory is made 0700; one other users
// can enter is refused with the command that fixes it; a 0755 directory
// inside a private one (what t.TempDir makes) is private enough; files
// left group- or world-readable are made owner-only.
func TestPrepareDataDir(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)

	// Reachable by others: the parent is 0755 under /tmp.
	base, err := os.MkdirTemp("", "certmail-datadir-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}

	fresh := filepath.Join(base, "fresh", "data")
	if err := PrepareDataDir(fresh, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{fresh, filepath.Dir(fresh)} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Fatalf("%s created with mode %v (%v), want 0700", d, st.Mode(), err)
		}
	}

	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	err = PrepareDataDir(open, nil)
	if !errors.Is(err, ErrUnsafeDataDir) || !strings.Contains(err.Error(), "chmod 700 "+open) {
		t.Fatalf("0755 data directory: %v, want ErrUnsafeDataDir saying chmod 700", err)
	}
	if _, err := Open(Options{Dir: open}); !errors.Is(err, ErrUnsafeDataDir) {
		t.Fatalf("Open on a 0755 data directory: %v, want ErrUnsafeDataDir", err)
	}
	if err := os.Chmod(open, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := PrepareDataDir(open, nil); !errors.Is(err, ErrUnsafeDataDir) {
		t.Fatalf("0750 data directory: %v, want ErrUnsafeDataDir", err)
	}

	// Inside a 0700 directory, a 0755 one is out of everyone else's reach.
	shielded := filepath.Join(fresh, "inner")
	if err := os.Mkdir(shielded, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := PrepareDataDir(shielded, nil); err != nil {
		t.Fatalf("0755 directory inside a 0700 one: %v", err)
	}

	if err := os.Chmod(open, 0o700); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(open, "gateway.key")
	if err := os.WriteFile(loose, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := PrepareDataDir(open, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(loose); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("a 0644 file left at %v (%v), want 0600", st.Mode(), err)
	}
}
