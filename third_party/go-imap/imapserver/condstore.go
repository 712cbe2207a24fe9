package imapserver

import "github.com/emersion/go-imap/v2"

// certmail patch: CONDSTORE (RFC 7162), server side.

// SessionCondStore is implemented by sessions that keep mod-sequences.
// CondStore reports whether CONDSTORE is on: only then do ENABLE
// CONDSTORE, SELECT/EXAMINE (CONDSTORE) and STATUS (HIGHESTMODSEQ) work.
type SessionCondStore interface {
	CondStore() bool
}

func (c *Conn) condStoreSupported() bool {
	s, ok := c.session.(SessionCondStore)
	return ok && s.CondStore()
}

// enableCondStore records a CONDSTORE-enabling command (RFC 7162 3.1).
func (c *Conn) enableCondStore() {
	c.mutex.Lock()
	c.enabled[imap.CapCondStore] = struct{}{}
	c.mutex.Unlock()
}

// CondStoreEnabled reports whether a CONDSTORE-enabling command ran on the
// connection (RFC 7162 3.1): FETCH responses must then carry MODSEQ.
func (c *Conn) CondStoreEnabled() bool {
	c.mutex.Lock()
	defer c.mutex.Unlock()
	return c.enabled.Has(imap.CapCondStore)
}

// writeHighestModSeq writes the SELECT/EXAMINE response code of RFC 7162
// 3.1.2.1: HIGHESTMODSEQ, or NOMODSEQ for a mailbox without them.
func (c *Conn) writeHighestModSeq(modSeq uint64) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("OK").SP().Special('[')
	if modSeq == 0 {
		enc.Atom("NOMODSEQ").Special(']').SP().Text("No mod-sequences in this mailbox")
	} else {
		enc.Atom("HIGHESTMODSEQ").SP().ModSeq(modSeq).Special(']').SP().Text("Highest")
	}
	return enc.CRLF()
}
