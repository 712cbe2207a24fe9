package evidence

import (
	"fmt"
	"strings"

	"certmail/kv"
)

// StoredIdentity returns the gateway name the log was created under
// (SetIdentity), if one is stored.
func StoredIdentity(kv kv.Records) (string, bool, error) {
	v, found, err := kv.Get([]byte(keyIdentity))
	if err != nil {
		return "", false, fmt.Errorf("reading the log's identity: %w", err)
	}
	return string(v), found, nil
}

// SetIdentity stores the gateway name the log is kept under. Its records
// and checkpoints are signed under that name, so it must not change once
// anything was signed (see Signed).
func SetIdentity(kv kv.Records, name string) error {
	if err := kv.Set([]byte(keyIdentity), []byte(name)); err != nil {
		return fmt.Errorf("storing the log's identity: %w", err)
	}
	return nil
}

// LatestOrigin returns the origin line of the newest stored checkpoint,
// without checking its signature: what a log kept before its identity was
// stored was published under.
func LatestOrigin(kv kv.Records) (string, bool, error) {
	cp, found, err := LatestCheckpoint(kv)
	if err != nil || !found {
		return "", false, err
	}
	origin, _, ok := strings.Cut(string(cp), "\n")
	if !ok || origin == "" {
		return "", false, fmt.Errorf("latest checkpoint has no origin line")
	}
	return origin, true, nil
}

// Signed reports whether anything was signed under the log's identity: a
// record or a published checkpoint.
func Signed(kv kv.Records) (bool, error) {
	size, err := Size(kv)
	if err != nil {
		return false, err
	}
	if size > 0 {
		return true, nil
	}
	_, found, err := LatestCheckpoint(kv)
	return found, err
}
