package imapserver

// certmail patch: SORT and THREAD (RFC 5256), SORT=DISPLAY keys (RFC 5957).

import (
	"fmt"
	"strconv"
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

// SessionSort is a session that answers SORT. options is nil for a plain
// SORT, and holds the RETURN options of an ESORT (RFC 5267 section 3),
// ReturnSave among them: the session then keeps the result's UIDs as $
// (RFC 5182).
type SessionSort interface {
	Session
	Sort(kind NumKind, criteria []SortCriterion, search *imap.SearchCriteria, options *imap.SearchOptions) ([]uint32, error)
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

func (c *Conn) handleSort(tag string, dec *imapwire.Decoder, numKind NumKind) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	// ESORT (RFC 5267 section 3): SORT RETURN (options) (criteria) ...
	var options *imap.SearchOptions
	var atom string
	if dec.Atom(&atom) {
		if !strings.EqualFold(atom, "RETURN") {
			return &imapwire.DecoderExpectError{Message: fmt.Sprintf("expected RETURN or sort criteria, got %q", atom)}
		}
		options = &imap.SearchOptions{}
		if err := readSearchReturnOpts(dec, options); err != nil {
			return fmt.Errorf("in sort-return-opts: %w", err)
		}
		if !dec.ExpectSP() {
			return dec.Err()
		}
		// RETURN () is RETURN (ALL) (RFC 4731 section 3.1).
		if !options.ReturnMin && !options.ReturnMax && !options.ReturnCount && !options.ReturnSave &&
			!options.ReturnAll && options.ReturnPartial == nil && !options.ReturnUpdate {
			options.ReturnAll = true
		}
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
	if options != nil {
		// CONTEXT=SORT (RFC 5267 section 4).
		if err := c.checkContextOptions(options); err != nil {
			return err
		}
	}
	nums, err := session.Sort(numKind, sortCriteria, search, options)
	if err != nil {
		return err
	}
	if options != nil {
		if !options.ReturnMin && !options.ReturnMax && !options.ReturnCount && !options.ReturnAll &&
			options.ReturnPartial == nil && !options.ReturnUpdate {
			return nil // SAVE alone: nothing but the tagged OK (RFC 5182 2.1)
		}
		return c.writeESort(tag, nums, options, numKind)
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

// writeESort writes an ESORT result (RFC 5267 section 3.2): MIN and MAX
// are the first and last in sort order, and ALL keeps that order, a range
// only where the numbers ascend by one.
func (c *Conn) writeESort(tag string, nums []uint32, options *imap.SearchOptions, numKind NumKind) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ESEARCH").SP().Special('(').Atom("TAG").SP().String(tag).Special(')')
	if numKind == NumKindUID {
		enc.SP().Atom("UID")
	}
	if len(nums) > 0 {
		if options.ReturnMin {
			enc.SP().Atom("MIN").SP().Number(nums[0])
		}
		if options.ReturnMax {
			enc.SP().Atom("MAX").SP().Number(nums[len(nums)-1])
		}
		if options.ReturnAll {
			enc.SP().Atom("ALL").SP().Atom(orderedSet(nums))
		}
	}
	if options.ReturnCount {
		enc.SP().Atom("COUNT").SP().Number(uint32(len(nums)))
	}
	if r := options.ReturnPartial; r != nil {
		from, to := PartialWindow(*r, len(nums))
		writePartial(enc.Encoder, *r, nums[from:to])
	}
	return enc.CRLF()
}

// orderedSet writes numbers as a sequence-set in their order.
func orderedSet(nums []uint32) string {
	var b strings.Builder
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(nums[i]), 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(nums[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}
