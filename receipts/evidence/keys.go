package evidence

import (
	"encoding/binary"

	"github.com/transparency-dev/merkle/compact"
)

// The log's layout in the KV. Numbers are 8-byte big-endian so that keys
// sort in numeric order under Scan.
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
	keyHead             = "evlog/head"
	prefixLeaf          = "evlog/leaf/"
	prefixNode          = "evlog/node/"
	prefixLabel         = "evlog/label/"
	prefixCheckpoint    = "evlog/checkpoint/"
	keyLatestCheckpoint = "evlog/checkpoint-latest"
	keyIdentity         = "evlog/identity"
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
