package imapsrv

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Thread answers THREAD and UID THREAD (RFC 5256 sections 4 and 5) from
// the stored sort keys, like Sort: a stub threads by its own headers.
func (sess *session) Thread(kind imapserver.NumKind, algorithm imap.ThreadAlgorithm, search *imap.SearchCriteria) ([]imapserver.ThreadData, error) {
	switch algorithm {
	case imap.ThreadOrderedSubject, imap.ThreadReferences:
	default:
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "unknown threading algorithm " + strconv.Quote(string(algorithm))}
	}
	items, _, err := sess.sortItems("THREAD", search, true)
	if err != nil {
		return nil, err
	}
	num := func(it *sortItem) uint32 {
		if kind == imapserver.NumKindUID {
			return it.msg.UID
		}
		return it.seq
	}
	var roots []*threadNode
	if algorithm == imap.ThreadOrderedSubject {
		roots = orderedSubject(items)
	} else {
		roots = references(items)
	}
	out := make([]imapserver.ThreadData, 0, len(roots))
	for _, r := range roots {
		out = append(out, r.data(num))
	}
	return out, nil
}

// threadNode is a container of RFC 5256 section 4: a message, or a dummy
// (item nil) standing for one that is referred to but not there.
type threadNode struct {
	item     *sortItem
	parent   *threadNode
	children []*threadNode
	date     int64 // sort date: the message's, or a dummy's first child's
}

// data writes a thread: a chain while each node has one child, the
// children as nested threads where there are more (RFC 5256 section 5).
func (n *threadNode) data(num func(*sortItem) uint32) imapserver.ThreadData {
	var d imapserver.ThreadData
	for {
		if n.item == nil && len(n.children) == 1 {
			n = n.children[0] // a dummy with one child says nothing
			continue
		}
		if n.item != nil {
			d.Chain = append(d.Chain, num(n.item))
		}
		if len(n.children) == 1 {
			n = n.children[0]
			continue
		}
		for _, c := range n.children {
			d.SubThreads = append(d.SubThreads, c.data(num))
		}
		return d
	}
}

func itemDate(it *sortItem) int64 { return it.keys.sentDate(it.msg.InternalDate) }

// compareNodes orders siblings by sent date, then mailbox order (RFC 5256
// section 4, step 6).
func compareNodes(a, b *threadNode) int {
	if r := cmp.Compare(a.date, b.date); r != 0 {
		return r
	}
	return cmp.Compare(a.firstSeq(), b.firstSeq())
}

func (n *threadNode) firstSeq() uint32 {
	for n.item == nil && len(n.children) > 0 {
		n = n.children[0]
	}
	if n.item == nil {
		return 0
	}
	return n.item.seq
}

// orderedSubject is THREAD=ORDEREDSUBJECT (RFC 5256 section 4): messages
// grouped by base subject, each group's first by sent date its root and
// the others its children, groups ordered by their roots' dates.
func orderedSubject(items []sortItem) []*threadNode {
	order := make([]*sortItem, len(items))
	for i := range items {
		order[i] = &items[i]
	}
	slices.SortStableFunc(order, func(a, b *sortItem) int {
		if r := cmp.Compare(a.keys.Subject, b.keys.Subject); r != 0 {
			return r
		}
		if r := cmp.Compare(itemDate(a), itemDate(b)); r != 0 {
			return r
		}
		return cmp.Compare(a.seq, b.seq)
	})
	var roots []*threadNode
	var root *threadNode
	for i, it := range order {
		n := &threadNode{item: it, date: itemDate(it)}
		if i > 0 && root != nil && it.keys.Subject == root.item.keys.Subject {
			n.parent = root
			root.children = append(root.children, n)
			continue
		}
		root = n
		roots = append(roots, n)
	}
	slices.SortStableFunc(roots, compareNodes)
	return roots
}

// references is THREAD=REFERENCES (RFC 5256 section 4), the steps
// numbered as there.
func references(items []sortItem) []*threadNode {
	byID := make(map[string]*threadNode, len(items))
	container := func(id string) *threadNode {
		n := byID[id]
		if n == nil {
			n = &threadNode{}
			byID[id] = n
		}
		return n
	}
	var all []*threadNode
	for i := range items {
		it := &items[i]
		// 1A: the message's container; a message without a Message-ID,
		// or with one already taken, gets one of its own.
		var n *threadNode
		if id := it.keys.MessageID; id != "" && (byID[id] == nil || byID[id].item == nil) {
			n = container(id)
		} else {
			n = &threadNode{}
		}
		n.item = it
		all = append(all, n)
		// Link the references, each the parent of the next, where
		// neither link exists yet and none makes a loop.
		var prev *threadNode
		for _, ref := range it.keys.References {
			c := container(ref)
			if prev != nil && c.parent == nil && c != prev && !isAncestor(c, prev) {
				link(prev, c)
			}
			prev = c
		}
		// 1B: the last reference is the message's parent, replacing
		// whatever parent an earlier message's references gave it. That
		// old parent goes even when the new one would make a loop and is
		// not linked: the message's own References outrank another's
		// guess (Dovecot's imaptest "thread" script: <c> referring to its
		// own child <b> is a root, not left under the <a> that <b>'s
		// References put above it).
		if n.parent != nil {
			unlink(n)
		}
		if prev != nil && prev != n && !isAncestor(n, prev) {
			link(prev, n)
		}
	}
	for _, n := range byID {
		all = append(all, n)
	}
	// 2: the root set, in a stable order (maps are not).
	var roots []*threadNode
	seen := make(map[*threadNode]bool, len(all))
	for _, n := range all {
		if n.parent == nil && !seen[n] {
			seen[n] = true
			roots = append(roots, n)
		}
	}
	// 4: prune dummies.
	roots = prune(roots, true)
	setDates(roots)
	slices.SortStableFunc(roots, compareNodes)
	// 5: gather roots of the same base subject.
	subject := func(n *threadNode) (string, bool) {
		if n.item == nil {
			if len(n.children) == 0 {
				return "", false
			}
			if c := n.children[0]; c.item != nil {
				return c.item.keys.Subject, true
			}
			return "", false
		}
		return n.item.keys.Subject, true
	}
	table := map[string]*threadNode{}
	for _, r := range roots {
		s, ok := subject(r)
		if !ok || s == "" {
			continue
		}
		old := table[s]
		if old == nil || (r.item == nil && old.item != nil) ||
			(old.item != nil && r.item != nil && old.item.keys.IsReply && !r.item.keys.IsReply) {
			table[s] = r
		}
	}
	var out []*threadNode
	at := map[*threadNode]int{}              // a root's place in out
	dummyOf := map[*threadNode]*threadNode{} // a root put under a new dummy
	emit := func(n *threadNode) {
		if _, ok := at[n]; !ok {
			at[n] = len(out)
			out = append(out, n)
		}
	}
	for _, r := range roots {
		if r.parent != nil { // merged under another root already
			if d := dummyOf[r]; d != nil {
				emit(d)
			}
			continue
		}
		s, ok := subject(r)
		h := table[s]
		if !ok || s == "" || h == nil || h == r {
			emit(r)
			continue
		}
		switch {
		case h.item == nil && r.item == nil:
			// Both dummies: one takes the other's children.
			for _, c := range r.children {
				c.parent = h
			}
			h.children = append(h.children, r.children...)
			r.children = nil
		case h.item == nil:
			link(h, r)
		case r.item == nil:
			link(r, h)
			table[s] = r
			replaceRoot(out, at, h, r)
			dummyOf[h] = r
			emit(r)
		case r.item.keys.IsReply && !h.item.keys.IsReply:
			link(h, r)
		default:
			// Both replies or neither: siblings under a new dummy, which
			// takes the held root's place.
			d := &threadNode{}
			link(d, h)
			link(d, r)
			table[s] = d
			replaceRoot(out, at, h, d)
			dummyOf[h] = d
		}
	}
	// 6: siblings by sent date.
	setDates(out)
	slices.SortStableFunc(out, compareNodes)
	return out
}

// replaceRoot puts n where old stood in out, if old is there yet.
func replaceRoot(out []*threadNode, at map[*threadNode]int, old, n *threadNode) {
	if i, ok := at[old]; ok {
		out[i] = n
		at[n] = i
		delete(at, old)
	}
}

func link(parent, child *threadNode) {
	child.parent = parent
	parent.children = append(parent.children, child)
}

func unlink(n *threadNode) {
	p := n.parent
	if i := slices.Index(p.children, n); i >= 0 {
		p.children = slices.Delete(p.children, i, i+1)
	}
	n.parent = nil
}

// isAncestor reports whether a is b or one of b's ancestors.
func isAncestor(a, b *threadNode) bool {
	for n := b; n != nil; n = n.parent {
		if n == a {
			return true
		}
	}
	return false
}

// prune is step 4: a dummy without children goes, and one with children
// gives them to its parent, except at the root when it has several
// (they stay together under it).
func prune(nodes []*threadNode, atRoot bool) []*threadNode {
	var out []*threadNode
	for _, n := range nodes {
		n.children = prune(n.children, false)
		switch {
		case n.item != nil:
			out = append(out, n)
		case len(n.children) == 0:
		case atRoot && len(n.children) > 1:
			out = append(out, n)
		default:
			for _, c := range n.children {
				c.parent = n.parent
			}
			out = append(out, n.children...)
		}
	}
	return out
}

// setDates sorts each node's children by date and gives each node its
// sort date: its message's, or a dummy's first child's (step 6).
func setDates(nodes []*threadNode) {
	for _, n := range nodes {
		setDates(n.children)
		slices.SortStableFunc(n.children, compareNodes)
		if n.item != nil {
			n.date = itemDate(n.item)
		} else if len(n.children) > 0 {
			n.date = n.children[0].date
		}
	}
}
