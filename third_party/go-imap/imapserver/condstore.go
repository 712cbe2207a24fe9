package imapserver

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

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

// SessionHighestModSeq is implemented by sessions that can tell the
// selected mailbox's HIGHESTMODSEQ as the client may know it (certmail
// patch): with everything the client was told, nothing it was not.
type SessionHighestModSeq interface {
	HighestModSeq() (uint64, error)
}

// enableCondStore records a CONDSTORE-enabling command (RFC 7162 3.1).
// The first one in the selected state answers OK [HIGHESTMODSEQ n] too,
// before the command's own responses (RFC 7162 3.1: the client has no
// HIGHESTMODSEQ for the mailbox yet).
func (c *Conn) enableCondStore() error {
	c.mutex.Lock()
	was := c.enabled.Has(imap.CapCondStore)
	c.enabled[imap.CapCondStore] = struct{}{}
	c.mutex.Unlock()
	if was || c.state != imap.ConnStateSelected {
		return nil
	}
	s, ok := c.session.(SessionHighestModSeq)
	if !ok {
		return nil
	}
	modSeq, err := s.HighestModSeq()
	if err != nil {
		return err
	}
	return c.writeHighestModSeq(modSeq)
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

// certmail patch: QRESYNC (RFC 7162 3.2), server side.

// SessionQResync is implemented by sessions that remember expunged UIDs.
// QRESYNC is on when the session also implements SessionCondStore and
// CondStore reports true.
type SessionQResync interface {
	// QResync writes the responses asked for by the QRESYNC parameter
	// of the SELECT or EXAMINE whose Select just succeeded (the options
	// passed to Select had QResync set): VANISHED (EARLIER) through
	// w.WriteVanishedEarlier, then a FETCH with UID, FLAGS and MODSEQ of
	// each message changed (RFC 7162 3.2.5). It runs after the
	// mailbox's other untagged responses, before the tagged OK.
	QResync(w *FetchWriter) error
}

func (c *Conn) qresyncSupported() bool {
	_, ok := c.session.(SessionQResync)
	return ok && c.condStoreSupported()
}

// QResyncEnabled reports whether ENABLE QRESYNC ran on the connection:
// expunges are then reported by VANISHED instead of EXPUNGE (RFC 7162
// 3.2.10).
func (c *Conn) QResyncEnabled() bool {
	c.mutex.Lock()
	defer c.mutex.Unlock()
	_, ok := c.enabled[imap.CapQResync]
	return ok
}

// writeVanished writes a VANISHED response (RFC 7162 3.2.10); earlier
// adds the (EARLIER) tag of answers about the past, which do not change
// sequence numbers.
func (c *Conn) writeVanished(uids imap.UIDSet, earlier bool) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("VANISHED").SP()
	if earlier {
		enc.Special('(').Atom("EARLIER").Special(')').SP()
	}
	enc.NumSet(uids)
	return enc.CRLF()
}

// WriteVanishedEarlier writes VANISHED (EARLIER) uids, for UID FETCH's
// VANISHED modifier and SELECT's QRESYNC parameter (RFC 7162 3.2.5,
// 3.2.6). An empty set writes nothing.
func (w *FetchWriter) WriteVanishedEarlier(uids imap.UIDSet) error {
	if len(uids) == 0 {
		return nil
	}
	return w.conn.writeVanished(uids, true)
}

// parseQResyncParam parses the QRESYNC select parameter after its name
// (RFC 7162 3.2.5, section 7's grammar):
// SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
// [SP seq-match-data] ")".
func parseQResyncParam(dec *imapwire.Decoder) (*imap.SelectQResync, error) {
	var q imap.SelectQResync
	if !dec.ExpectSP() {
		return nil, dec.Err()
	}
	n := 0
	err := dec.ExpectList(func() error {
		n++
		switch n {
		case 1:
			if !dec.ExpectNumber(&q.UIDValidity) {
				return dec.Err()
			}
			if q.UIDValidity == 0 {
				return newClientBugError("QRESYNC: UIDVALIDITY must not be zero")
			}
		case 2:
			if !dec.ExpectModSeq(&q.ModSeq) {
				return dec.Err()
			}
		case 3, 4:
			// known-uids, then seq-match-data, each optional: a list
			// is the latter.
			if !dec.Special('(') {
				if n == 4 {
					return newClientBugError("QRESYNC: expected seq-match-data")
				}
				if !dec.ExpectUIDSet(&q.KnownUIDs) {
					return dec.Err()
				}
				return nil
			}
			if q.SeqMatch != nil {
				return newClientBugError("QRESYNC: unexpected parameter after seq-match-data")
			}
			var m imap.SelectQResyncSeqMatch
			var seqs imap.NumSet
			if !dec.ExpectNumSet(imapwire.NumKindSeq, &seqs) || !dec.ExpectSP() ||
				!dec.ExpectUIDSet(&m.UIDs) || !dec.ExpectSpecial(')') {
				return dec.Err()
			}
			m.SeqNums = seqs.(imap.SeqSet)
			if imap.IsSearchRes(m.SeqNums) || imap.IsSearchRes(m.UIDs) || m.SeqNums.Dynamic() || m.UIDs.Dynamic() {
				return newClientBugError("QRESYNC: seq-match-data must not use * or $")
			}
			seqNums, _ := m.SeqNums.Nums()
			uids, _ := m.UIDs.Nums()
			if len(seqNums) != len(uids) {
				return newClientBugError("QRESYNC: seq-match-data lists a different number of sequence numbers and UIDs")
			}
			q.SeqMatch = &m
		default:
			return newClientBugError("QRESYNC: too many parameters")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n < 2 {
		return nil, newClientBugError("QRESYNC: UIDVALIDITY and MODSEQ required")
	}
	if imap.IsSearchRes(q.KnownUIDs) {
		return nil, newClientBugError("QRESYNC: known-uids must not be $")
	}
	return &q, nil
}
