package badgerkv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Badger writes its memtable out to a table when it closes, through a
// memory map: on a full filesystem the first write to a page the
// filesystem cannot back is SIGBUS, which kills the process (the store's
// disk reserve keeps the store's own writes from filling the disk, but
// not another program). So the store keeps headroom: a file of
// headroomSize bytes, allocated when it opens, removed just before it
// closes, which leaves room for the memtable's table (at most its log's
// size, twice memTableSize) and the last small commits, however full the
// disk has become meanwhile.
const headroomSize = 2*memTableSize + 4<<20

// headroomName is the file, hidden so that backups (which copy the data
// directory's own files beside Badger's stream) leave it out.
const headroomName = ".close-headroom"

// makeHeadroom allocates the headroom file in dir (again: the last close
// removed it). It fails, leaving no file, when the disk has no room for it.
func makeHeadroom(dir string) error {
	path := filepath.Join(dir, headroomName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	err = allocate(f, headroomSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("allocating %d bytes in %s: %w", headroomSize, path, err)
	}
	return nil
}

// ReleaseHeadroom removes the headroom file, giving its space to what the
// store writes while closing. Close does it too; the mailbox store calls
// it first, before its own last commit.
func (d *DB) ReleaseHeadroom() error {
	if d.inMemory {
		return nil
	}
	err := os.Remove(filepath.Join(d.dir, headroomName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the close headroom: %w", err)
	}
	return nil
}

func writeZeros(f *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), size-n)]); err != nil {
			return err
		}
	}
	return nil
}
