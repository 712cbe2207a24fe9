//go:build unix

package netguard

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises the soft limit on open descriptors (RLIMIT_NOFILE)
// to the hard limit and returns the limit now in force. Every connection
// costs a descriptor, and the soft limit a shell or service manager hands
// down (often 1024) is a few hundred idle clients away. Go's runtime does
// the same at start on most systems; doing it here makes it explicit and
// gives the number to log.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(lim.Cur), fmt.Errorf("raising RLIMIT_NOFILE from %d to %d: %w", lim.Cur, lim.Max, err)
		}
		lim = want
	}
	return uint64(lim.Cur), nil
}
