package evidence

import (
	"fmt"

	"certmail/kv"
)

// MaxLeafHashes bounds one LeafHashes call, so that a public endpoint
// serving them does a bounded amount of work per request.
const MaxLeafHashes = 1000

// LeafHashes returns the RFC 6962 leaf hashes of leaves [start, end). The
// hashes reveal nothing of the records, so they may be published: with
// them anyone can recompute the tree and check every checkpoint.
func LeafHashes(kv kv.Records, start, end uint64) ([][]byte, error) {
	if start > end {
		return nil, fmt.Errorf("leaf hashes: start %d is after end %d", start, end)
	}
	if end-start > MaxLeafHashes {
		return nil, fmt.Errorf("leaf hashes: %d asked for, at most %d at once", end-start, MaxLeafHashes)
	}
	if err := checkSize(kv, end); err != nil {
		return nil, fmt.Errorf("leaf hashes: %w", err)
	}
	indexes := make([]uint64, 0, end-start)
	for i := start; i < end; i++ {
		indexes = append(indexes, i)
	}
	leaves, err := readLeaves(kv, indexes)
	if err != nil {
		return nil, fmt.Errorf("leaf hashes: %w", err)
	}
	out := make([][]byte, len(leaves))
	for i, jws := range leaves {
		out[i] = LeafHash(jws)
	}
	return out, nil
}
