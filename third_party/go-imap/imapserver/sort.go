package imapserver

// certmail patch: SORT and THREAD (RFC 5256), SORT=DISPLAY keys (RFC 5957).

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SortKey is a SORT key (RFC 5256 section 3, RFC 5957 section 3).
type SortKey string

const (
	SortKeyArrival     SortKey = "ARRIVAL"
	SortKeyCc          SortKey = "CC"
	SortKeyDate        SortKey = "DATE"
	SortKeyFrom        SortKey = "FROM"
	SortKeySize        SortKey = "SIZE"
	SortKeySubject     SortKey = "SUBJECT"
	SortKeyTo          SortKey = "TO"
	SortKeyDisplayFrom SortKey = "DISPLAYFROM"
	SortKeyDisplayTo   SortKey = "DISPLAYTO"
)

// SortCriterion is one key of a SORT program, REVERSE or not.
type SortCriterion struct {
	Key     SortKey
	Reverse bool
}

// ThreadData is one thread of a THREAD answer: a chain of messages, each
// the parent of the next, then the chain's last message's children when it
// has more than one (RFC 5256 section 4). A thread without a chain is a
// dummy parent's children.
type ThreadData struct {
	Chain      []uint32
	SubThreads []ThreadData
}

// SessionSort is a session that answers SORT.
type SessionSort interface {
	Session
	Sort(kind NumKind, criteria []SortCriterion, search *imap.SearchCriteria) ([]uint32, error)
}

// SessionThread is a session that answers THREAD.
type SessionThread interface {
	Session
	Thread(kind NumKind, algorithm imap.ThreadAlgorithm, search *imap.SearchCriteria) ([]ThreadData, error)
}

// ReadSortCriteria reads "(" sort-criterion *(SP sort-criterion) ")".
func readSortCriteria(dec *imapwire.Decoder) ([]SortCriterion, error) {
	var out []SortCriterion
	err := dec.ExpectList(func() error {
		var atom string
		if !dec.ExpectAtom(&atom) {
			return dec.Err()
		}
		var c SortCriterion
		if strings.EqualFold(atom, "REVERSE") {
			c.Reverse = true
			if !dec.ExpectSP() || !dec.ExpectAtom(&atom) {
				return dec.Err()
			}
		}
		switch k := SortKey(strings.ToUpper(atom)); k {
		case SortKeyArrival, SortKeyCc, SortKeyDate, SortKeyFrom, SortKeySize,
			SortKeySubject, SortKeyTo, SortKeyDisplayFrom, SortKeyDisplayTo:
			c.Key = k
		default:
			return &imapwire.DecoderExpectError{Message: fmt.Sprintf("unknown sort key %q", atom)}
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, &imapwire.DecoderExpectError{Message: "empty sort criteria"}
	}
	return out, nil
}

// readCharsetAndSearch reads SP charset 1*(SP search-key) CRLF, the tail
// both SORT and THREAD share (RFC 5256 section 3).
func (c *Conn) readCharsetAndSearch(dec *imapwire.Decoder) (*imap.SearchCriteria, error) {
	var charset string
	if !dec.ExpectSP() || !dec.ExpectAString(&charset) || !dec.ExpectSP() {
		return nil, dec.Err()
	}
	var criteria imap.SearchCriteria
	for {
		if err := readSearchKey(&criteria, dec); err != nil {
			return nil, fmt.Errorf("in search-key: %w", err)
		}
		if !dec.SP() {
			break
		}
	}
	if !dec.ExpectCRLF() {
		return nil, dec.Err()
	}
	switch strings.ToUpper(charset) {
	case "US-ASCII", "UTF-8":
	default:
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeBadCharset,
			Text: "Only US-ASCII and UTF-8 are supported charsets"}
	}
	modSeqKey := SearchCriteriaUseModSeq(&criteria)
	if modSeqKey && !c.condStoreSupported() {
		return nil, &imapwire.DecoderExpectError{Message: `unknown search key "MODSEQ"`}
	}
	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return nil, err
	}
	if modSeqKey {
		c.enableCondStore()
	}
	return &criteria, nil
}

func (c *Conn) handleSort(dec *imapwire.Decoder, numKind NumKind) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	sortCriteria, err := readSortCriteria(dec)
	if err != nil {
		return fmt.Errorf("in sort-criteria: %w", err)
	}
	search, err := c.readCharsetAndSearch(dec)
	if err != nil {
		return err
	}
	session, ok := c.session.(SessionSort)
	if !ok {
		return newClientBugError("SORT is not supported")
	}
	nums, err := session.Sort(numKind, sortCriteria, search)
	if err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("SORT")
	for _, n := range nums {
		enc.SP().Number(n)
	}
	return enc.CRLF()
}

func (c *Conn) handleThread(dec *imapwire.Decoder, numKind NumKind) error {
	var algo string
	if !dec.ExpectSP() || !dec.ExpectAtom(&algo) {
		return dec.Err()
	}
	search, err := c.readCharsetAndSearch(dec)
	if err != nil {
		return err
	}
	session, ok := c.session.(SessionThread)
	if !ok {
		return newClientBugError("THREAD is not supported")
	}
	threads, err := session.Thread(numKind, imap.ThreadAlgorithm(strings.ToUpper(algo)), search)
	if err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("THREAD")
	if len(threads) > 0 {
		enc.SP()
	}
	for _, t := range threads {
		writeThread(enc.Encoder, t)
	}
	return enc.CRLF()
}

// writeThread writes one thread-list: the chain's numbers, then each
// child thread in its own parentheses, no space between them (RFC 5256
// section 5, thread-nested).
func writeThread(enc *imapwire.Encoder, t ThreadData) {
	enc.Special('(')
	for i, n := range t.Chain {
		if i > 0 {
			enc.SP()
		}
		enc.Number(n)
	}
	if len(t.Chain) > 0 && len(t.SubThreads) > 0 {
		enc.SP()
	}
	for _, s := range t.SubThreads {
		writeThread(enc, s)
	}
	enc.Special(')')
}
