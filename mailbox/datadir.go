package mailbox

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
)

// ErrUnsafeDataDir: the data directory can be read or written by users
// other than its owner. It holds every message, held certified items,
// password hashes and the gateway's signing key.
var ErrUnsafeDataDir = errors.New("unsafe data directory")

// PrepareDataDir makes sure dir is a directory only its owner can enter:
// it creates it (0700) when missing, refuses one whose mode lets group or
// others in, unless a directory above keeps them out (saying how to fix
// it), and takes group and other permissions
// off any file directly inside, left by an older certmail that created
// them 0644. The store calls it on Open; commands that write into the
// data directory before opening the store call it first.
func PrepareDataDir(dir string, log *slog.Logger) error {
	if runtime.GOOS == "windows" {
		return nil // no Unix modes; ACLs are the operator's
	}
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating data directory: %w", err)
		}
		// MkdirAll's mode passes through the umask, which only removes
		// bits; 0700 is what we asked for, unless a parent existed.
		st, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 && reachable(dir) {
		return fmt.Errorf("%w: %s has mode %04o, so other users can reach the mail, password hashes and keys in it; run `chmod 700 %s` (and make sure it is owned by the user certmail runs as)",
			ErrUnsafeDataDir, dir, perm, dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading data directory: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			p := filepath.Join(dir, e.Name())
			if err := os.Chmod(p, perm&0o700); err != nil {
				return fmt.Errorf("restricting %s to its owner: %w", p, err)
			}
			if log != nil {
				log.Info("data file made private to its owner", "file", p, "was", fmt.Sprintf("%04o", perm))
			}
		}
	}
	return nil
}

// reachable reports whether users other than the owner can get to dir:
// whether every directory above it lets group or others through (x). A
// 0755 directory inside a 0700 one is as private as the 0700 one (Go's
// t.TempDir makes exactly that); when in doubt, it is reachable.
func reachable(dir string) bool {
	p, err := filepath.Abs(dir)
	if err != nil {
		return true
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	for {
		parent := filepath.Dir(p)
		if parent == p {
			return true
		}
		p = parent
		st, err := os.Stat(p)
		if err != nil {
			return true
		}
		if st.Mode().Perm()&0o011 == 0 {
			return false
		}
	}
}

// Exists reports whether dir holds a store (Badger's MANIFEST, written
// when a store is first opened). A missing or empty directory holds none:
// only the commands that create stores may open it.
func Exists(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, "MANIFEST"))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("looking for a store in %s: %w", dir, err)
}
