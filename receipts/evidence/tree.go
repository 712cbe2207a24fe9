package evidence

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"certmail/kv"
)

// The tree is RFC 6962 / RFC 9162 over the records' compact JWS bytes. Only
// complete subtrees are stored: they never change once the tree grows past
// them, and every inclusion or consistency proof is made of them plus at
// most one node that proof.Nodes.Rehash recomputes.

var hasher = rfc6962.DefaultHasher

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHash is the RFC 6962 leaf hash of a record: what inclusion proofs
// prove.
func LeafHash(jws string) []byte { return hasher.HashLeaf([]byte(jws)) }

// readHead returns the tree's size and root hash.
func readHead(kv kv.Records) (uint64, []byte, error) {
	v, found, err := kv.Get([]byte(keyHead))
	if err != nil {
		return 0, nil, fmt.Errorf("reading log head: %w", err)
	}
	if !found {
		return 0, hasher.EmptyRoot(), nil
	}
	if len(v) != 8+hasher.Size() {
		return 0, nil, fmt.Errorf("log head has %d bytes, want %d", len(v), 8+hasher.Size())
	}
	return binary.BigEndian.Uint64(v), bytes.Clone(v[8:]), nil
}

func writeHead(kv kv.Records, size uint64, root []byte) error {
	v := binary.BigEndian.AppendUint64(nil, size)
	if err := kv.Set([]byte(keyHead), append(v, root...)); err != nil {
		return fmt.Errorf("writing log head: %w", err)
	}
	return nil
}

// readNodes fetches stored complete-subtree hashes.
func readNodes(kv kv.Records, ids []compact.NodeID) ([][]byte, error) {
	// One GetMany (one round trip on PostgreSQL), not a Get per node:
	// Append loads the compact range, up to 64 nodes, inside the write
	// transaction every other append conflicts with (see readLeaves).
	keys := make([][]byte, len(ids))
	for i, id := range ids {
		keys[i] = nodeKey(id)
	}
	hashes := make([][]byte, len(ids))
	if err := kv.GetMany(keys, func(i int, v []byte) error {
		hashes[i] = bytes.Clone(v)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading %d tree nodes: %w", len(ids), err)
	}
	for i, id := range ids {
		if hashes[i] == nil || len(hashes[i]) != hasher.Size() {
			return nil, fmt.Errorf("tree node %d/%d is missing or damaged", id.Level, id.Index)
		}
	}
	return hashes, nil
}

// compactRange loads the compact range [0, size): the roots of the perfect
// subtrees covering the tree, which is all appending needs.
func compactRange(kv kv.Records, size uint64) (*compact.Range, error) {
	hashes, err := readNodes(kv, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("loading tree of size %d: %w", size, err)
	}
	return r, nil
}

// appendLeaf adds leaf number size, stores the complete subtrees it
// finishes, and returns the new root.
func appendLeaf(kv kv.Records, size uint64, leafHash []byte) ([]byte, error) {
	r, err := compactRange(kv, size)
	if err != nil {
		return nil, err
	}
	var storeErr error
	store := func(id compact.NodeID, hash []byte) {
		if storeErr == nil {
			if err := kv.Set(nodeKey(id), hash); err != nil {
				storeErr = fmt.Errorf("writing tree node %d/%d: %w", id.Level, id.Index, err)
			}
		}
	}
	if err := r.Append(leafHash, store); err != nil {
		return nil, fmt.Errorf("appending leaf %d: %w", size, err)
	}
	if storeErr != nil {
		return nil, storeErr
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("root of size %d: %w", size+1, err)
	}
	return root, nil
}

// Size returns the number of records in the log.
func Size(kv kv.Records) (uint64, error) {
	size, _, err := readHead(kv)
	return size, err
}

// Root returns the log's current size and root hash.
func Root(kv kv.Records) (uint64, []byte, error) {
	return readHead(kv)
}

// RootAt recomputes the root hash the log had at size, from the stored
// subtrees; size may be any value up to the current size.
func RootAt(kv kv.Records, size uint64) ([]byte, error) {
	if err := checkSize(kv, size); err != nil {
		return nil, err
	}
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	r, err := compactRange(kv, size)
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// InclusionProof proves that leaf index is in the tree of the given size.
func InclusionProof(kv kv.Records, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("inclusion proof: index %d is not below size %d", index, size)
	}
	if err := checkSize(kv, size); err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof for %d in %d: %w", index, size, err)
	}
	return fetchProof(kv, nodes)
}

// ConsistencyProof proves that the tree of size1 is a prefix of the tree
// of size2.
func ConsistencyProof(kv kv.Records, size1, size2 uint64) ([][]byte, error) {
	if size1 > size2 {
		return nil, fmt.Errorf("consistency proof: size %d is above size %d", size1, size2)
	}
	if err := checkSize(kv, size2); err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("consistency proof from %d to %d: %w", size1, size2, err)
	}
	return fetchProof(kv, nodes)
}

func fetchProof(kv kv.Records, nodes proof.Nodes) ([][]byte, error) {
	hashes, err := readNodes(kv, nodes.IDs)
	if err != nil {
		return nil, err
	}
	p, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("building proof: %w", err)
	}
	return p, nil
}

func checkSize(kv kv.Records, size uint64) error {
	current, err := Size(kv)
	if err != nil {
		return err
	}
	if size > current {
		return fmt.Errorf("size %d is beyond the log's %d", size, current)
	}
	return nil
}
