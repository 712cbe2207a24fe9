package badgerkv

import (
	"os"

	"golang.org/x/sys/unix"
)

// allocate gives f size bytes of real disk blocks (a sparse file would
// free nothing when removed).
func allocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if err == unix.EOPNOTSUPP {
		return writeZeros(f, size)
	}
	return err
}
