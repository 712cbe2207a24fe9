package mailbox

import (
	"slices"
	"sync"
)

// Mailbox records kept in memory on a node that follows other nodes
// (issue 13), so that SELECT costs one round trip, the catch-up every
// state-reporting command pays (CatchUp), instead of three.
//
// A SELECT on PostgreSQL read the mailbox's record by name, then its
// record and MODSEQ state by ID: with the catch-up, three round trips of
// 0.1-0.25 ms each on this machine, where Dovecot answers a SELECT of a
// mailbox whose index file is current in 0.2-0.4 ms in all. The index
// (index.go) already follows every commit; the records are what it
// lacked. They are cached as they were read, and dropped whenever
// anything may have changed them:
//
//   - a local commit that wrote or deleted a record of an account drops
//     the account's records, under wmu, as it updates the index
//     (Tx.recordChanged, updateOnce), and so does one whose COMMIT
//     failed (its answer may have been lost after it committed, and a
//     node skips its own bulletins);
//   - a transaction on a shared store that writes a record also names its
//     mailbox in the transaction's bulletin (with no messages when none
//     changed: a \Recent claim, a subscription), and every poll drops the
//     records of each account a bulletin from another node names, before
//     it applies the bulletin (follower.readIn): after CatchUp, nothing
//     another node committed before the call is left cached;
//   - a poll that fails, or that finds it may have missed bulletins
//     (resync), drops them all: a node that cannot read the database
//     answers from it, and fails, as before.
//
// A read that fills the cache starts from the account's generation and
// fills only if no drop came in between: a commit racing the read may
// have changed the record after the read's snapshot.
type recordCache struct {
	mu    sync.Mutex
	accts map[string]*acctRecords
}

// recordCacheMaxAccounts bounds the accounts whose records are kept; past
// it the cache starts afresh (a record costs a read to come back).
const recordCacheMaxAccounts = 10_000

type acctRecords struct {
	gen    uint64 // raised by each drop
	byName map[string]*MailboxInfo
	byID   map[uint32]*MailboxInfo
}

func newRecordCache() *recordCache {
	return &recordCache{accts: make(map[string]*acctRecords)}
}

// account returns acct's entry, creating it. mu must be held.
func (c *recordCache) account(acct string) *acctRecords {
	a := c.accts[acct]
	if a == nil {
		if len(c.accts) >= recordCacheMaxAccounts {
			clear(c.accts)
		}
		a = &acctRecords{}
		c.accts[acct] = a
	}
	return a
}

// byName returns a copy of the cached record of a mailbox by its
// normalized name, if any.
func (c *recordCache) byName(acct, name string) (*MailboxInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.accts[acct]; a != nil {
		if mb := a.byName[name]; mb != nil {
			return copyMailboxInfo(mb), true
		}
	}
	return nil, false
}

// byID is byName by mailbox ID.
func (c *recordCache) byID(acct string, id uint32) (*MailboxInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.accts[acct]; a != nil {
		if mb := a.byID[id]; mb != nil {
			return copyMailboxInfo(mb), true
		}
	}
	return nil, false
}

// generation is what a read that may fill the cache starts from.
func (c *recordCache) generation(acct string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.account(acct).gen
}

// put caches a record read at generation gen, unless a drop came since.
func (c *recordCache) put(acct string, gen uint64, mb *MailboxInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.accts[acct]
	if a == nil || a.gen != gen {
		return
	}
	if a.byName == nil {
		a.byName = make(map[string]*MailboxInfo)
		a.byID = make(map[uint32]*MailboxInfo)
	}
	mb = copyMailboxInfo(mb)
	a.byName[mb.Name] = mb
	a.byID[mb.ID] = mb
}

// drop forgets an account's records.
func (c *recordCache) drop(acct string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.accts[acct]; a != nil {
		a.gen++
		a.byName, a.byID = nil, nil
	}
}

// dropAll forgets every record.
func (c *recordCache) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.accts {
		a.gen++
		a.byName, a.byID = nil, nil
	}
}

func copyMailboxInfo(mb *MailboxInfo) *MailboxInfo {
	out := *mb
	out.SpecialUse = slices.Clone(mb.SpecialUse)
	return &out
}

// cachesRecords reports whether the store answers from cached records:
// only a store that follows other nodes' commits and catches up before
// the commands that use them (CatchUp). Elsewhere a record is a read of
// Badger (microseconds), or of a database no poll keeps the cache
// current with.
func (s *Store) cachesRecords() bool {
	return s.follow != nil && s.follow.barrier.on
}

// recordChanged is called by every write of a mailbox record (a mailbox
// created, renamed, deleted; its UIDNEXT, \Recent claim or subscription
// changed): the account's cached records are dropped when the
// transaction commits, and other nodes hear of it in its bulletin.
func (tx *Tx) recordChanged(acct string, id uint32) {
	if !slices.Contains(tx.recordAccts, acct) {
		tx.recordAccts = append(tx.recordAccts, acct)
	}
	if tx.s.follow != nil {
		tx.boxNote(acct, id) // named, even with no message changed
	}
}

// dropChangedRecords runs after the transaction commits, with wmu held.
func (tx *Tx) dropChangedRecords() {
	for _, acct := range tx.recordAccts {
		tx.s.recs.drop(acct)
	}
}

// CurrentMailbox returns a mailbox's record by name as this node knows it
// once caught up (CatchUp): on a store that follows other nodes, from
// memory when it has it, so a caller that must see other nodes' commits
// calls CatchUp first; elsewhere it is Mailbox.
func (s *Store) CurrentMailbox(acct, name string) (*MailboxInfo, error) {
	if !s.cachesRecords() {
		return s.Mailbox(acct, name)
	}
	n, err := NormalizeMailbox(name)
	if err != nil {
		return nil, err
	}
	if mb, ok := s.recs.byName(acct, n); ok {
		return mb, nil
	}
	gen := s.recs.generation(acct)
	mb, err := s.Mailbox(acct, n)
	if err != nil {
		return nil, err
	}
	s.recs.put(acct, gen, mb)
	return mb, nil
}
