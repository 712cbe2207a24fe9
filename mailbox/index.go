package mailbox

import (
	"sort"
	"sync"
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
}

func newIndex() *index { return &index{boxes: make(map[mboxRef]*boxIndex)} }

func (b *boxIndex) find(uid uint32) (int, bool) {
	i := sort.Search(len(b.msgs), func(i int) bool { return b.msgs[i].UID >= uid })
	return i, i < len(b.msgs) && b.msgs[i].UID == uid
}

// put inserts or replaces a record and returns its 1-based sequence number.
func (b *boxIndex) put(m *Message) uint32 {
	i, ok := b.find(m.UID)
	if ok {
		b.msgs[i] = m
		return uint32(i + 1)
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
	copy(b.msgs[i:], b.msgs[i+1:])
	b.msgs[len(b.msgs)-1] = nil
	b.msgs = b.msgs[:len(b.msgs)-1]
	return uint32(i + 1), true
}

func (b *boxIndex) status() MailboxStatus {
	st := MailboxStatus{Messages: uint32(len(b.msgs))}
	for _, m := range b.msgs {
		if !m.HasFlag(FlagSeen) {
			st.Unseen++
		}
		if m.HasFlag(FlagDeleted) {
			st.Deleted++
		}
		st.Size += m.Size
	}
	return st
}
