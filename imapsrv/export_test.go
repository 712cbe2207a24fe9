package imapsrv

import (
	"bytes"
	"encoding/gob"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// SetSlowFetch turns fetchfast.go off, so tests can compare its responses
// with imapserver's own FETCH writer.
func SetSlowFetch(s *Server, slow bool) { s.slowFetch = slow }

// OnSearchDone has f called after each SEARCH with the messages it looked
// at, the texts it case-folded and its error. Set it before any session.
func OnSearchDone(s *Server, f func(messages, folds int, err error)) { s.onSearchDone = f }

// OnSearchMessage has f called before each message a SEARCH looks at.
func OnSearchMessage(s *Server, f func()) { s.onSearchMessage = f }

// AfterStore has f run after each STORE's change commits, before its
// responses are written.
func AfterStore(s *Server, f func()) { s.afterStore = f }

// BeforeBye has f run before each deleted account's session is sent its
// BYE. Set it before any session.
func BeforeBye(s *Server, f func()) { s.beforeBye = f }

// AfterPassword sets a hook LOGIN runs between the password check and
// the session's registration.
func AfterPassword(s *Server, f func(acct string)) { s.afterPassword = f }

// LegacySummarize is Summarize as it was before sort keys were stored
// ahead of the summary, for testing what SORT does with older messages.
func LegacySummarize(raw []byte) []byte {
	s := Summarize(raw)
	_, rest, _ := splitSummary(s)
	return rest
}

// SummarizeV1 is Summarize as it was with version 1 of the stored sort
// keys ("\x00S1"): keys folded to lower case, for testing that SORT
// computes such keys again rather than trusting them.
func SummarizeV1(raw []byte) []byte {
	_, rest, _ := splitSummary(Summarize(raw))
	k := computeSortKeys(raw)
	for _, p := range []*string{&k.Subject, &k.From, &k.To, &k.Cc, &k.DisplayFrom, &k.DisplayTo} {
		*p = strings.ToLower(*p)
	}
	return append(encodeSortKeys([]byte(sortKeysMagicV1), k), rest...)
}

// SummarizeWithoutPreview is Summarize as it was before previews were
// stored (RFC 8970): a summary whose gob type has no preview fields.
func SummarizeWithoutPreview(raw []byte) []byte {
	registerSummaryTypes()
	type legacySummary struct {
		Envelope      *imap.Envelope
		BodyStructure imap.BodyStructure
	}
	s := computeSummary(raw)
	var buf bytes.Buffer
	buf.WriteString(sortKeysMagic)
	buf.Write(encodeSortKeys(nil, computeSortKeys(raw)))
	if err := gob.NewEncoder(&buf).Encode(&legacySummary{s.Envelope, s.BodyStructure}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// DropSortOrders forgets every tracked mailbox's sort orders
// (sortorder.go): the next SORT builds them afresh, for comparing with
// orders kept up to date across changes.
func DropSortOrders(s *Server) {
	s.boxesMu.Lock()
	defer s.boxesMu.Unlock()
	for _, b := range s.boxes {
		b.orders.mu.Lock()
		b.orders.by = nil
		b.orders.mu.Unlock()
	}
}
