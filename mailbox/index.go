package mailbox

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// index keeps, per mailbox, the message records in UID order, so that
// sequence numbers, STATUS counters and flag searches need no disk access.
// Mailboxes are loaded on first use. It is read under mu and written only
// by a committing transaction (which also holds Store.wmu).
type index struct {
	mu    sync.RWMutex
	boxes map[mboxRef]*boxIndex
}

type mboxRef struct {
	acct string
	id   uint32
}

type boxIndex struct {
	msgs []*Message
	// lastUsed is when the index was last read (UnixNano), for eviction
	// (see Store.evictIdleIndexes).
	lastUsed atomic.Int64

	// Running totals, kept by put, remove and add, so that STATUS and
	// SELECT of a large mailbox cost the same as of a small one (a walk
	// over 100,000 records was most of a SELECT, and a STATUS was a walk).
	unseen, deleted uint32
	size            int64
	// deletedSize is the size of the messages flagged \Deleted (STATUS
	// DELETED-STORAGE, RFC 9208).
	deletedSize int64
	// keywords counts the messages carrying each flag that is not a
	// system flag, by spelling.
	keywords map[string]int
	// firstUnseen is the index of the first message without \Seen
	// (len(msgs) if none) when firstUnseenKnown; an index change that may
	// move it past where it can be followed forgets it, and the next
	// SELECT finds it again. Only touched with Store.wmu held.
	firstUnseen      int
	firstUnseenKnown bool
	// modseq is the MODSEQ the index is exact at: every change of the
	// mailbox up to it is in, none above it missing that a commit of
	// this node made. Kept only where other nodes write too (follow.go).
	modseq uint64
}

// count adds a record's contribution to the totals (sign 1) or takes it
// away (sign -1).
func (b *boxIndex) count(m *Message, sign int) {
	b.size += int64(sign) * m.Size
	seen := false
	for _, f := range m.Flags {
		switch {
		case f == FlagSeen:
			seen = true
		case f == FlagDeleted:
			b.deleted += uint32(sign)
			b.deletedSize += int64(sign) * m.Size
		case isSystemFlag(f):
		default:
			if b.keywords == nil {
				b.keywords = make(map[string]int)
			}
			if b.keywords[f] += sign; b.keywords[f] <= 0 {
				delete(b.keywords, f)
			}
		}
	}
	if !seen {
		b.unseen += uint32(sign)
	}
}

// isSystemFlag reports whether f is one of RFC 9051's system flags as the
// store spells them (the store canonicalizes their case on the way in).
func isSystemFlag(f string) bool {
	switch f {
	case FlagSeen, FlagAnswered, FlagFlagged, FlagDeleted, FlagDraft, `\Recent`:
		return true
	}
	return false
}

func isSeen(m *Message) bool {
	for _, f := range m.Flags {
		if f == FlagSeen {
			return true
		}
	}
	return false
}

// add appends a record known to sort last (loading the index).
func (b *boxIndex) add(m *Message) {
	b.msgs = append(b.msgs, m)
	b.count(m, 1)
	b.firstUnseenKnown = false
	b.modseq = max(b.modseq, m.ModSeq)
}

// indexLoader holds the records of a mailbox being loaded (Store.loadBox),
// decoded in UID order into slabs of Messages rather than one allocation
// each, until fill makes the index's slice once, at its length. Loading a
// mailbox of 100,000 messages was 100,000 allocations and a slice grown
// some twenty times, a third of the load's CPU with the collector's part.
// A slab stays in memory while the index holds any record of it, which
// bounds what replaced records keep to the size of the index loaded.
type indexLoader struct {
	slabs [][]Message
	n     int
}

// The slabs grow from minSlab records to maxSlab (about 56 KB), so that
// a small mailbox takes little.
const minSlab, maxSlab = 16, 512

// next returns the zero Message to decode the next record into.
func (l *indexLoader) next() *Message {
	if k := len(l.slabs); k == 0 || len(l.slabs[k-1]) == cap(l.slabs[k-1]) {
		size := maxSlab
		if k < 8 {
			size = min(minSlab<<k, maxSlab)
		}
		l.slabs = append(l.slabs, make([]Message, 0, size))
	}
	s := &l.slabs[len(l.slabs)-1]
	*s = (*s)[:len(*s)+1]
	l.n++
	return &(*s)[len(*s)-1]
}

// fill adds the records to b, an empty index.
func (l *indexLoader) fill(b *boxIndex) {
	b.msgs = make([]*Message, 0, l.n)
	for _, s := range l.slabs {
		for i := range s {
			b.add(&s[i])
		}
	}
}

func newIndex() *index { return &index{boxes: make(map[mboxRef]*boxIndex)} }

func (b *boxIndex) find(uid uint32) (int, bool) {
	i := sort.Search(len(b.msgs), func(i int) bool { return b.msgs[i].UID >= uid })
	return i, i < len(b.msgs) && b.msgs[i].UID == uid
}

// put inserts or replaces a record and returns its 1-based sequence number.
func (b *boxIndex) put(m *Message) uint32 {
	i, ok := b.find(m.UID)
	b.count(m, 1)
	seen := isSeen(m)
	if ok {
		b.count(b.msgs[i], -1)
		b.msgs[i] = m
		switch {
		case !seen && i < b.firstUnseen:
			b.firstUnseen = i
		case seen && i == b.firstUnseen:
			b.firstUnseenKnown = false
		}
		return uint32(i + 1)
	}
	if i <= b.firstUnseen {
		if seen {
			b.firstUnseen++
		} else {
			b.firstUnseen = i
		}
	}
	if i == len(b.msgs) {
		b.msgs = append(b.msgs, m)
		return uint32(len(b.msgs))
	}
	b.msgs = append(b.msgs, nil)
	copy(b.msgs[i+1:], b.msgs[i:])
	b.msgs[i] = m
	return uint32(i + 1)
}

// remove deletes a record and returns the sequence number it had.
func (b *boxIndex) remove(uid uint32) (uint32, bool) {
	i, ok := b.find(uid)
	if !ok {
		return 0, false
	}
	b.count(b.msgs[i], -1)
	switch {
	case i < b.firstUnseen:
		b.firstUnseen--
	case i == b.firstUnseen:
		b.firstUnseenKnown = false
	}
	copy(b.msgs[i:], b.msgs[i+1:])
	b.msgs[len(b.msgs)-1] = nil
	b.msgs = b.msgs[:len(b.msgs)-1]
	return uint32(i + 1), true
}

func (b *boxIndex) status() MailboxStatus {
	return MailboxStatus{
		Messages: uint32(len(b.msgs)),
		Unseen:   b.unseen,
		Deleted:  b.deleted,
		Size:     b.size,

		DeletedSize: b.deletedSize,
	}
}

// firstUnseenSeq returns the sequence number of the first message without
// \Seen, 0 if none. Store.wmu must be held.
func (b *boxIndex) firstUnseenSeq() uint32 {
	if !b.firstUnseenKnown {
		b.firstUnseen = len(b.msgs)
		for i, m := range b.msgs {
			if !isSeen(m) {
				b.firstUnseen = i
				break
			}
		}
		b.firstUnseenKnown = true
	}
	if b.firstUnseen >= len(b.msgs) {
		return 0
	}
	return uint32(b.firstUnseen + 1)
}

// keywordList returns the keywords in use, sorted.
func (b *boxIndex) keywordList() []string {
	out := make([]string, 0, len(b.keywords))
	for k := range b.keywords {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// evictIdleIndexes drops the index of every mailbox not read since idle
// ago, and returns how many it dropped. The next read loads it again from
// disk. It holds the write lock, so no commit is updating an index (nor a
// load filling one) meanwhile; indexes that commits updated but nobody read
// go too: the disk has the same.
func (s *Store) evictIdleIndexes(idle time.Duration) int {
	cutoff := time.Now().Add(-idle).UnixNano()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	n := 0
	for ref, bi := range s.idx.boxes {
		if bi.lastUsed.Load() < cutoff {
			delete(s.idx.boxes, ref)
			n++
		}
	}
	return n
}

// countFrom counts the messages whose UID is uid or above.
func (bi *boxIndex) countFrom(uid uint32) uint32 {
	i := sort.Search(len(bi.msgs), func(i int) bool { return bi.msgs[i].UID >= uid })
	return uint32(len(bi.msgs) - i)
}
