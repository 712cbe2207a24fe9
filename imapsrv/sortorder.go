package imapsrv

import (
	"cmp"
	"slices"
	"sync"

	"github.com/emersion/go-imap/v2/imapserver"
)

// A mailbox's sort orders: for each sort key a SORT has used, the
// mailbox's messages in that key's order, UIDs breaking ties (which is
// mailbox order, RFC 5256 section 3). Kept with the tracked box, beside
// its records, and brought up to date at the next SORT: new messages (a
// new message's UID is above every other) are sorted among themselves and
// merged in; expunged ones stay until they are a third of the order,
// since a SORT walks the order through its search result, which they are
// not in. So a SORT of 100,000 messages by SUBJECT compares no strings but
// those of new messages (and, for REVERSE, neighbours for equality): it
// walks the order once (BenchmarkSortLarge; a sort of the decoded keys
// each time was 4.5 times Dovecot's sort index). Several keys are sorted
// by each key's rank in its order, integers, not strings.

// sortOrders are a tracked box's orders, by key.
type sortOrders struct {
	mu sync.Mutex
	by map[imapserver.SortKey]*sortOrder
}

// sortOrder is a mailbox's messages in one key's order. Its items are
// never changed in place: an update makes a new slice, so a SORT may walk
// the one it got without the lock.
type sortOrder struct {
	items []sortItem
	// maxUID: every message of the mailbox up to it is in items.
	maxUID uint32
	// replaced is the box's replaced count the order was built at
	// (trackedBox.replaced).
	replaced uint64
}

// ordered returns the box's messages in key's order, with their sort keys
// when the key needs them.
func (sess *session) ordered(key imapserver.SortKey) ([]sortItem, error) {
	box := sess.box
	box.orders.mu.Lock()
	defer box.orders.mu.Unlock()
	o := box.orders.by[key]

	box.mu.Lock()
	n, replaced := len(box.msgs), box.replaced
	rebuild := o == nil || o.replaced != replaced || len(o.items) > n+n/2+1024
	start := 0
	if !rebuild {
		start, _ = box.find(o.maxUID + 1)
	}
	fresh := make([]sortItem, 0, n-start)
	for _, m := range box.msgs[start:] {
		fresh = append(fresh, sortItem{target: target{msg: m}})
	}
	box.mu.Unlock()

	if !rebuild && len(fresh) == 0 {
		return o.items, nil
	}
	if needSortKeys([]imapserver.SortCriterion{{Key: key}}) {
		if err := sess.loadSortKeys(fresh); err != nil {
			return nil, err
		}
	}
	byKey := func(a, b sortItem) int {
		if r := compareBy(key, &a, &b); r != 0 {
			return r
		}
		return cmp.Compare(a.msg.UID, b.msg.UID)
	}
	slices.SortFunc(fresh, byKey)
	next := &sortOrder{items: fresh, replaced: replaced}
	if !rebuild {
		next.items = mergeOrdered(o.items, fresh, byKey)
		next.maxUID = o.maxUID
	}
	for _, it := range fresh {
		next.maxUID = max(next.maxUID, it.msg.UID)
	}
	if box.orders.by == nil {
		box.orders.by = make(map[imapserver.SortKey]*sortOrder)
	}
	box.orders.by[key] = next
	return next.items, nil
}

// mergeOrdered merges two ordered lists into a new one.
func mergeOrdered(a, b []sortItem, less func(x, y sortItem) int) []sortItem {
	out := make([]sortItem, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if less(b[j], a[i]) < 0 {
			out = append(out, b[j])
			j++
		} else {
			out = append(out, a[i])
			i++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// matchIndex finds a message among items (in UID order) by UID: through
// a table when the UIDs are dense enough, else by binary search.
type matchIndex struct {
	items []sortItem
	base  uint32
	table []int32
}

func newMatchIndex(items []sortItem) *matchIndex {
	mi := &matchIndex{items: items}
	if len(items) == 0 {
		return mi
	}
	mi.base = items[0].msg.UID
	if span := items[len(items)-1].msg.UID - mi.base + 1; int64(span) <= 4*int64(len(items))+1024 {
		mi.table = make([]int32, span)
		for i := range mi.table {
			mi.table[i] = -1
		}
		for i, it := range items {
			mi.table[it.msg.UID-mi.base] = int32(i)
		}
	}
	return mi
}

// find returns the index of uid among the items, or -1.
func (mi *matchIndex) find(uid uint32) int {
	if len(mi.items) == 0 || uid < mi.base {
		return -1
	}
	if mi.table != nil {
		if d := uid - mi.base; int(d) < len(mi.table) {
			return int(mi.table[d])
		}
		return -1
	}
	i, ok := slices.BinarySearchFunc(mi.items, uid, func(it sortItem, u uint32) int { return cmp.Compare(it.msg.UID, u) })
	if !ok {
		return -1
	}
	return i
}

// sortByOrders sorts matched (the search result, in UID order, with the
// client's sequence numbers) by criteria, through the box's orders. The
// result carries each message's sort keys.
func (sess *session) sortByOrders(matched []sortItem, criteria []imapserver.SortCriterion) ([]sortItem, error) {
	mi := newMatchIndex(matched)
	if len(criteria) == 1 {
		order, err := sess.ordered(criteria[0].Key)
		if err != nil {
			return nil, err
		}
		return walkOrder(order, mi, criteria[0]), nil
	}
	// Several keys: each message's rank in each key's order (equal keys,
	// equal ranks), then a sort on ranks.
	ranks := make([][]uint32, len(criteria))
	out := make([]sortItem, len(matched))
	copy(out, matched)
	for k, c := range criteria {
		order, err := sess.ordered(c.Key)
		if err != nil {
			return nil, err
		}
		ranks[k] = make([]uint32, len(matched))
		var r uint32
		for i := range order {
			if i > 0 && compareBy(c.Key, &order[i-1], &order[i]) != 0 {
				r++
			}
			if j := mi.find(order[i].msg.UID); j >= 0 {
				ranks[k][j] = r
				if order[i].keys != nil {
					out[j].keys = order[i].keys
				}
			}
		}
	}
	idx := make([]int32, len(matched))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(a, b int32) int {
		for k, c := range criteria {
			if r := cmp.Compare(ranks[k][a], ranks[k][b]); r != 0 {
				if c.Reverse {
					return -r
				}
				return r
			}
		}
		return cmp.Compare(a, b) // mailbox order
	})
	sorted := make([]sortItem, len(idx))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted, nil
}

// walkOrder returns the matched messages in an order's sequence; for
// REVERSE, runs of equal keys are taken from the last to the first, each
// run in mailbox order (RFC 5256 section 3: REVERSE does not turn the
// tie-break around).
func walkOrder(order []sortItem, mi *matchIndex, c imapserver.SortCriterion) []sortItem {
	out := make([]sortItem, 0, len(mi.items))
	take := func(it sortItem) {
		if j := mi.find(it.msg.UID); j >= 0 {
			it.seq = mi.items[j].seq
			out = append(out, it)
		}
	}
	if !c.Reverse {
		for _, it := range order {
			take(it)
		}
		return out
	}
	for i := len(order) - 1; i >= 0; {
		j := i
		for j > 0 && compareBy(c.Key, &order[j-1], &order[i]) == 0 {
			j--
		}
		for _, it := range order[j : i+1] {
			take(it)
		}
		i = j - 1
	}
	return out
}
