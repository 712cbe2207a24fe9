//go:build linux || darwin || freebsd

package mailbox

import (
	"fmt"
	"syscall"
)

// freeSpace returns the bytes an unprivileged process may still write on
// the filesystem of dir (f_bavail: root's reserved blocks do not count, so
// a server running as root stops in time too).
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
