//go:build !unix

package netguard

// RaiseFileLimit does nothing where there is no RLIMIT_NOFILE; 0 means
// unknown.
func RaiseFileLimit() (uint64, error) { return 0, nil }
