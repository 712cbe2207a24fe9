package imapsrv

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/mailbox"
)

// sortItem is a message SORT or THREAD orders, with its keys.
type sortItem struct {
	target
	keys *sortKeys
}

// Sort answers SORT and UID SORT (RFC 5256 section 3, with RFC 5957's
// DISPLAYFROM and DISPLAYTO). Only the messages' records and stored sort
// keys are read: a certified item's stub sorts by its own headers and
// size, and nothing of the message it holds back is looked at.
func (sess *session) Sort(kind imapserver.NumKind, criteria []imapserver.SortCriterion, search *imap.SearchCriteria, options *imap.SearchOptions) ([]uint32, error) {
	if err := sess.checkContextTag(options); err != nil {
		return nil, err
	}
	// The keys come with the orders.
	items, highest, err := sess.sortItems("SORT", search, false)
	if err != nil {
		return nil, err
	}
	if options != nil && options.ReturnSave {
		// ESORT's SAVE keeps the matching messages as $ (RFC 5267
		// section 3, RFC 5182): a set, whatever the order.
		// Taken before sorting, while items are in UID order.
		uids := imap.UIDSet{}
		for _, it := range items {
			u := imap.UID(it.msg.UID)
			if n := len(uids); n > 0 && uids[n-1].Stop+1 == u {
				uids[n-1].Stop = u
			} else {
				uids = append(uids, imap.UIDRange{Start: u, Stop: u})
			}
		}
		sess.searchRes = uids
	}
	// Equal by every key: mailbox order (RFC 5256 section 3), which
	// REVERSE does not turn around (sortorder.go).
	items, err = sess.sortByOrders(items, criteria)
	if err != nil {
		return nil, fmt.Errorf("SORT: %w", err)
	}
	out := make([]uint32, len(items))
	for i, it := range items {
		out[i] = it.seq
		if kind == imapserver.NumKindUID {
			out[i] = it.msg.UID
		}
	}
	if options != nil && options.ReturnSave && options.ReturnPartial != nil && !options.ReturnCount {
		// RFC 9394 section 3.2: with PARTIAL (and no COUNT), $ is what
		// PARTIAL returns, and MIN's and MAX's messages (the first and
		// last in sort order).
		var saved imap.UIDSet
		from, to := imapserver.PartialWindow(*options.ReturnPartial, len(items))
		for _, it := range items[from:to] {
			saved.AddNum(imap.UID(it.msg.UID))
		}
		if n := len(items); n > 0 && options.ReturnMin {
			saved.AddNum(imap.UID(items[0].msg.UID))
		}
		if n := len(items); n > 0 && options.ReturnMax {
			saved.AddNum(imap.UID(items[n-1].msg.UID))
		}
		if saved == nil {
			saved = imap.UIDSet{}
		}
		sess.searchRes = saved
	}
	if options != nil && options.ReturnUpdate {
		if err := sess.addContext(kind, search, criteria, items, highest); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func compareBy(key imapserver.SortKey, a, b *sortItem) int {
	switch key {
	case imapserver.SortKeyArrival:
		return a.msg.InternalDate.Compare(b.msg.InternalDate)
	case imapserver.SortKeyCc:
		return strings.Compare(a.keys.Cc, b.keys.Cc)
	case imapserver.SortKeyDate:
		return cmp.Compare(a.keys.sentDate(a.msg.InternalDate), b.keys.sentDate(b.msg.InternalDate))
	case imapserver.SortKeyFrom:
		return strings.Compare(a.keys.From, b.keys.From)
	case imapserver.SortKeySize:
		return cmp.Compare(a.msg.Size, b.msg.Size)
	case imapserver.SortKeySubject:
		return strings.Compare(a.keys.Subject, b.keys.Subject)
	case imapserver.SortKeyTo:
		return strings.Compare(a.keys.To, b.keys.To)
	case imapserver.SortKeyDisplayFrom:
		return strings.Compare(a.keys.DisplayFrom, b.keys.DisplayFrom)
	case imapserver.SortKeyDisplayTo:
		return strings.Compare(a.keys.DisplayTo, b.keys.DisplayTo)
	}
	return 0
}

// sortItems runs the search program and loads the sort keys of what it
// found, in mailbox order; ARRIVAL and SIZE need only the records, and
// then no keys are read (needKeys false).
func (sess *session) sortItems(cmd string, search *imap.SearchCriteria, needKeys bool) ([]sortItem, uint64, error) {
	lim := sess.srv.opts.Limits
	if n := searchKeys(search); lim.MaxSearchKeys > 0 && n > lim.MaxSearchKeys {
		return nil, 0, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: fmt.Sprintf("too many search keys: %d (limit %d)", n, lim.MaxSearchKeys)}
	}
	run := &searchRun{sess: sess, watch: sess.watchCommand(lim.SearchTimeout)}
	if _, err := sess.search(run, imapserver.NumKindUID, search, &imap.SearchOptions{ReturnAll: true}); err != nil {
		if run.watch.err != nil {
			return nil, 0, sess.stopped(run.watch.err, lim.SearchTimeout, run)
		}
		return nil, 0, err
	}
	items := sess.itemsOf(run.uids)
	if !needKeys {
		return items, run.highest, nil
	}
	if err := sess.loadSortKeys(items); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", cmd, err)
	}
	return items, run.highest, nil
}

// itemsOf returns the messages of a UID set the client can see, in
// mailbox order.
func (sess *session) itemsOf(uids imap.UIDSet) []sortItem {
	// Both the UID set and the mailbox are in UID order: walk them
	// together.
	var items []sortItem
	box := sess.box
	box.mu.Lock()
	r := 0
	for i, m := range box.msgs {
		for r < len(uids) && uint32(uids[r].Stop) < m.UID {
			r++
		}
		if r == len(uids) {
			break
		}
		if m.UID < uint32(uids[r].Start) {
			continue
		}
		if cs := sess.tracker.EncodeSeqNum(uint32(i + 1)); cs != 0 {
			items = append(items, sortItem{target: target{seq: cs, msg: m}})
		}
	}
	box.mu.Unlock()
	return items
}

// loadSortKeys fills in each item's keys from the stored summaries, and
// computes them from the message's header for a message stored before
// sort keys existed.
func (sess *session) loadSortKeys(items []sortItem) error {
	var legacy, missing []int
	cache := &sess.srv.sortKeys
	cache.mu.Lock()
	for i := range items {
		if k := cache.m[items[i].msg.Blob]; k != nil {
			items[i].keys = k
		} else {
			missing = append(missing, i)
		}
	}
	cache.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	err := sess.srv.store.View(func(tx *mailbox.Tx) error {
		for _, i := range missing {
			sum, err := tx.BlobSummary(items[i].msg.Blob)
			if err != nil {
				return fmt.Errorf("reading the summary of message %d: %w", items[i].msg.UID, err)
			}
			k, _, err := splitSummary(sum)
			if err != nil || k == nil {
				legacy = append(legacy, i)
				continue
			}
			items[i].keys = k
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, i := range legacy {
		err := sess.srv.store.ReadRaw(items[i].msg.Blob, func(raw []byte) error {
			items[i].keys = computeSortKeys(raw)
			return nil
		})
		if errors.Is(err, mailbox.ErrNoMessage) {
			items[i].keys = &sortKeys{} // expunged meanwhile
			continue
		}
		if err != nil {
			return fmt.Errorf("reading message %d for its sort keys: %w", items[i].msg.UID, err)
		}
	}
	cache.add(items, missing)
	return nil
}

// sortKeyCacheMax bounds the cached sort keys: a few hundred bytes each,
// so about 100 MB at most, held only once SORT or THREAD has run.
const sortKeyCacheMax = 300_000

// sortKeyCache keeps sort keys decoded, by blob: a blob never changes, and
// webmail sorts the same large mailbox again at every page, where reading
// 100,000 stored summaries was nearly all of a SORT (BenchmarkSortLarge).
// When full it starts again empty, which is simple and bounds it.
type sortKeyCache struct {
	mu sync.Mutex
	m  map[uint64]*sortKeys
}

func (c *sortKeyCache) add(items []sortItem, which []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(which) > sortKeyCacheMax {
		c.m = make(map[uint64]*sortKeys, min(len(which), sortKeyCacheMax))
	}
	for _, i := range which {
		if len(c.m) >= sortKeyCacheMax {
			return
		}
		c.m[items[i].msg.Blob] = items[i].keys
	}
}
