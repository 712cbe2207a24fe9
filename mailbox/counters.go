package mailbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"certmail/kv"
)

// Store-wide counters that every delivery would otherwise read and write
// (seq/blob, the last blob ID given out) are a row every node's
// transactions conflict on: on one PostgreSQL database two deliveries to
// two different people, on two nodes, would abort one another. Blob IDs
// need only be unique, not dense nor in commit order, so a store takes
// them in leases: a transaction of its own moves seq/blob a lease ahead
// and commits, and the store hands the IDs of the lease out from memory,
// its deliveries never touching the row. A lease left unused (the store
// closed or the process died) is a gap in the IDs, nothing more; the
// counter only grows, so no ID is given out twice, whichever store took
// it, and a store of before the leases goes on from its counter.
//
// UIDNEXT stays a counter in each mailbox's record, read and written by
// every message added there (RFC 9051 2.3.1.1: UIDs strictly ascending
// in the order messages are added): concurrent deliveries to one mailbox
// from several nodes are ordered by the database, one conflicting and
// running again. The mailbox is the unit of contention, as in any
// IMAP store.

// blobLease is how many blob IDs a store takes at once.
const blobLease = 1024

// counterBlob is the seq/ counter of blob IDs: the last one leased.
const counterBlob = "blob"

// idLease hands out IDs from a leased range [next, end).
type idLease struct {
	mu        sync.Mutex
	next, end uint64
}

// take returns an ID no other store or lease has, leasing a new range
// from the counter when this one is used up.
func (l *idLease) take(db kv.Engine) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next >= l.end {
		key := []byte(prefixSeq + counterBlob)
		var last uint64
		err := kv.Update(db, func(tx kv.Txn) error {
			b, err := tx.Get(key, nil)
			switch {
			case errors.Is(err, kv.ErrNotFound):
				last = 0
			case err != nil:
				return err
			case len(b) != 8:
				return fmt.Errorf("bad length %d", len(b))
			default:
				last = binary.BigEndian.Uint64(b)
			}
			return tx.Set(key, binary.BigEndian.AppendUint64(nil, last+blobLease))
		})
		if err != nil {
			return 0, fmt.Errorf("leasing blob IDs: %w", err)
		}
		l.next, l.end = last+1, last+1+blobLease
	}
	id := l.next
	l.next++
	return id, nil
}
