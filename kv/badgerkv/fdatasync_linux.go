package badgerkv

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync is what Badger's msync of a log does (msync(MS_SYNC) is a
// data sync of the range): the data and the size, not the timestamps
// that every write through the map changes, which would cost a journal
// commit each.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("syncing %s: %w", f.Name(), err)
		}
		return nil
	}
}
