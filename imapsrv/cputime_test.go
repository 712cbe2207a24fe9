package imapsrv_test

import (
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time (user and system) the test process has used
// so far. The difference across a piece of work is what the work costs,
// whatever else the machine runs; its wall time grows with the machine's
// load (TestFetchDeepMessage: eight times as long at a load of 15 on two
// cores).
func processCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
