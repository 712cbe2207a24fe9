package imapsrv

// SetSlowFetch turns fetchfast.go off, so tests can compare its responses
// with imapserver's own FETCH writer.
func SetSlowFetch(s *Server, slow bool) { s.slowFetch = slow }
