package evidence

import (
	"encoding/binary"

	"github.com/transparency-dev/merkle/compact"

	"certmail/kv/keyspace"
)

// The log's layout in the store, under the prefix it claims
// (keyspace.Evidence). Numbers are 8-byte big-endian so that keys sort in
// numeric order under Scan.
//
//	evlog/head                     size ‖ root: the tree now (40 bytes)
//	evlog/leaf/<index>             a record's compact JWS: leaf <index>
//	evlog/node/<level><index>      hash of a complete subtree (level: 1 byte)
//	evlog/label/<label>            the label's leaf indexes, in chain order
//	evlog/checkpoint/<size>        the signed checkpoint of that size
//	evlog/checkpoint-latest        size of the newest stored checkpoint
//
// Every Append writes evlog/head, so two transactions that append to the
// same store always conflict there; the store retries one of them.
const (
	keyHead             = keyspace.Evidence + "head"
	prefixLeaf          = keyspace.Evidence + "leaf/"
	prefixNode          = keyspace.Evidence + "node/"
	prefixLabel         = keyspace.Evidence + "label/"
	prefixCheckpoint    = keyspace.Evidence + "checkpoint/"
	keyLatestCheckpoint = keyspace.Evidence + "checkpoint-latest"
	keyIdentity         = keyspace.Evidence + "identity"
)

func leafKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixLeaf), index)
}

func nodeKey(id compact.NodeID) []byte {
	k := append([]byte(prefixNode), byte(id.Level))
	return binary.BigEndian.AppendUint64(k, id.Index)
}

func labelKey(label string) []byte {
	return append([]byte(prefixLabel), label...)
}

func checkpointKey(size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixCheckpoint), size)
}
