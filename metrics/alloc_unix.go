//go:build unix

package metrics

import (
	"io/fs"
	"syscall"
)

// allocated is the disk space a file takes (st_blocks are 512 bytes,
// POSIX stat(3type)).
func allocated(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return info.Size()
}
