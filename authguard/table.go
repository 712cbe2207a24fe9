package authguard

import (
	"container/list"
	"time"
)

// table counts recent failures by key (an account or an address block),
// bounded to max entries. The Guard's mutex protects it.
//
// When full, a new key evicts the least recently used unlocked entry, and
// a locked one only when every entry is locked: a flood of new names or
// addresses must not be a way to unlock an account. Filling a table with
// locked entries takes MaxFailures checked passwords each, every one an
// argon2 computation; at the defaults (10,000 entries, 10 failures) that
// is 100,000 of them, longer on any machine than the lockout it would end.
type table struct {
	max    int
	m      map[string]*entry
	open   *list.List // unlocked entries; front: most recently used
	locked *list.List // locked entries; front: locked first
}

type entry struct {
	key string
	// n failures, the last at last; inflight attempts begun and not yet
	// ended.
	n, inflight int
	last        time.Time
	// synced is when n and last were last taken from the shared records
	// (Policy.Shared): a read begun before then is older, and not adopted.
	synced   time.Time
	isLocked bool
	el       *list.Element
}

func newTable(max int) *table {
	return &table{max: max, m: make(map[string]*entry), open: list.New(), locked: list.New()}
}

// get returns key's live entry: failures are forgotten `ttl` (the
// lockout) after the last one, which also ends a lockout.
func (t *table) get(key string, now time.Time, ttl time.Duration) *entry {
	e := t.m[key]
	if e != nil && e.inflight == 0 && now.Sub(e.last) >= ttl {
		t.remove(e)
		return nil
	}
	return e
}

// lockedFor says how long key stays refused: until its lockout ends when
// it has MaxFailures failures.
func (t *table) lockedFor(key string, now time.Time, pol Policy) time.Duration {
	if key == "" {
		return 0
	}
	e := t.get(key, now, pol.Lockout)
	if e != nil && e.n >= pol.MaxFailures {
		return e.last.Add(pol.Lockout).Sub(now)
	}
	return 0
}

// busy says whether the attempts in flight for key would reach
// MaxFailures if they all failed: the next attempt waits its turn.
func (t *table) busy(key string, now time.Time, pol Policy) bool {
	if key == "" {
		return false
	}
	e := t.get(key, now, pol.Lockout)
	if e == nil {
		return false
	}
	if e.n+e.inflight >= pol.MaxFailures {
		return true
	}
	// Other nodes' attempts in flight are not counted here (shared.go):
	// past the free failures, one attempt at a time on this node.
	return pol.Shared != nil && e.inflight >= 1 && e.n+e.inflight >= max(pol.FreeFailures, 1)
}

// begin counts an attempt in flight for key and returns its entry (nil
// for the empty key).
func (t *table) begin(key string, now time.Time, ttl time.Duration) *entry {
	if key == "" {
		return nil
	}
	e := t.get(key, now, ttl)
	if e == nil {
		e = t.create(key, now)
	} else if !e.isLocked {
		t.open.MoveToFront(e.el)
	}
	e.inflight++
	return e
}

func (t *table) create(key string, now time.Time) *entry {
	for len(t.m) >= t.max {
		el := t.open.Back()
		if el == nil {
			el = t.locked.Front()
		}
		t.remove(el.Value.(*entry))
	}
	e := &entry{key: key, last: now}
	e.el = t.open.PushFront(e)
	t.m[key] = e
	return e
}

// current returns key's entry if it is still begun's e (not evicted nor
// forgotten meanwhile), ending e's attempt; otherwise the entry there is
// now, if any.
func (t *table) current(key string, e *entry) *entry {
	cur := t.m[key]
	if cur != nil && cur == e {
		cur.inflight--
	}
	return cur
}

// fail ends an attempt begun with begin as a failure and returns key's
// failure count: shared's, the count the shared records hold with this
// failure, unless its n is negative (no shared records, or they could
// not be written), else one more than before.
func (t *table) fail(key string, e *entry, now time.Time, pol Policy, shared sharedCount) int {
	if key == "" {
		return 0
	}
	cur := t.current(key, e)
	if cur == nil {
		cur = t.create(key, now)
	}
	if shared.n >= 0 {
		cur.n, cur.last, cur.synced = shared.n, shared.last, now
	} else {
		cur.n++
		cur.last = now
	}
	t.relist(cur, pol)
	return cur.n
}

// adopt puts c, key's count in the shared records as read at start, in
// key's entry, unless the entry was synced since (by a failure of this
// node's, whose write returned a newer count).
func (t *table) adopt(key string, c sharedCount, start time.Time, pol Policy) {
	if key == "" {
		return
	}
	e := t.m[key]
	if e != nil && e.synced.After(start) {
		return
	}
	if c.n == 0 {
		if e == nil {
			return
		}
		if e.inflight == 0 {
			t.remove(e)
			return
		}
		e.n, e.synced = 0, start
		t.relist(e, pol)
		return
	}
	if e == nil {
		e = t.create(key, c.last)
	}
	e.n, e.last, e.synced = c.n, c.last, start
	t.relist(e, pol)
}

// succeed ends an attempt begun with begin as a success: key's count is
// lowered by forgive (all of it if negative). It returns the count before.
func (t *table) succeed(key string, e *entry, forgive int, pol Policy) int {
	if key == "" {
		return 0
	}
	cur := t.current(key, e)
	if cur == nil {
		return 0
	}
	n := cur.n
	if forgive < 0 {
		forgive = n
	}
	cur.n -= min(forgive, n)
	if cur.n == 0 && cur.inflight == 0 {
		t.remove(cur)
	} else {
		t.relist(cur, pol)
	}
	return n
}

// relist moves e to the list its count puts it on (and to the front of
// the open one).
func (t *table) relist(e *entry, pol Policy) {
	lock := pol.MaxFailures > 0 && e.n >= pol.MaxFailures
	switch {
	case lock && !e.isLocked:
		t.open.Remove(e.el)
		e.el = t.locked.PushBack(e)
	case !lock && e.isLocked:
		t.locked.Remove(e.el)
		e.el = t.open.PushFront(e)
	case !lock:
		t.open.MoveToFront(e.el)
	}
	e.isLocked = lock
}

func (t *table) remove(e *entry) {
	if e.isLocked {
		t.locked.Remove(e.el)
	} else {
		t.open.Remove(e.el)
	}
	delete(t.m, e.key)
}
