package imapsrv

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

// LegacySummarize is Summarize as it was before sort keys were stored
// ahead of the summary, for testing what SORT does with older messages.
func LegacySummarize(raw []byte) []byte {
	s := Summarize(raw)
	_, rest, _ := splitSummary(s)
	return rest
}
