package imapsrv

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Limits bound what one client address or one account may cost. The zero
// value limits nothing.
type Limits struct {
	// MaxConnectionsPerIP bounds the open connections from one address;
	// one more is greeted with BYE and closed. 0: no limit.
	MaxConnectionsPerIP int
	// MaxSessionsPerUser bounds the logged-in sessions of one account; a
	// login beyond it is refused with NO [LIMIT]. 0: no limit.
	MaxSessionsPerUser int
	// LoopbackExempt leaves loopback clients (a webmail or proxy on the
	// same host, whose users all share 127.0.0.1) out of the connection
	// and session counts. Failed logins are counted by Options.Auth,
	// with its own policy.
	LoopbackExempt bool
	// MaxSearchKeys bounds the keys of one SEARCH (each flag, date,
	// header or text key, NOT and OR, nested ones included); more get
	// NO [LIMIT]. 0: no limit.
	MaxSearchKeys int
	// SearchTimeout stops a SEARCH that runs longer, with NO [LIMIT].
	// 0: no limit. A SEARCH also stops when its client hangs up.
	SearchTimeout time.Duration
}

// limiter holds the in-memory state of Limits for one Server.
type limiter struct {
	lim Limits

	mu       sync.Mutex
	conns    map[string]int // by address
	sessions map[string]int // by account
}

func newLimiter(l Limits) *limiter {
	return &limiter{
		lim:      l,
		conns:    make(map[string]int),
		sessions: make(map[string]int),
	}
}

// exempt reports whether ip is left out of per-address limits.
func (l *limiter) exempt(ip string) bool {
	if !l.lim.LoopbackExempt {
		return false
	}
	p := net.ParseIP(ip)
	return p != nil && p.IsLoopback()
}

// acquireConn counts a new connection from ip; false means over the limit
// (and nothing was counted).
func (l *limiter) acquireConn(ip string) bool {
	if l.lim.MaxConnectionsPerIP <= 0 || l.exempt(ip) {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[ip] >= l.lim.MaxConnectionsPerIP {
		return false
	}
	l.conns[ip]++
	return true
}

func (l *limiter) releaseConn(ip string) {
	if l.lim.MaxConnectionsPerIP <= 0 || l.exempt(ip) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[ip]--; l.conns[ip] <= 0 {
		delete(l.conns, ip)
	}
}

// acquireSession counts a logged-in session of acct; false means over the
// limit. Sessions from exempt (loopback) addresses are not counted.
func (l *limiter) acquireSession(acct, ip string) bool {
	if l.lim.MaxSessionsPerUser <= 0 || l.exempt(ip) {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions[acct] >= l.lim.MaxSessionsPerUser {
		return false
	}
	l.sessions[acct]++
	return true
}

func (l *limiter) releaseSession(acct, ip string) {
	if l.lim.MaxSessionsPerUser <= 0 || l.exempt(ip) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions[acct]--; l.sessions[acct] <= 0 {
		delete(l.sessions, acct)
	}
}

// hostOf returns the IP of a connection's remote address.
func hostOf(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok {
		return a.IP.String()
	}
	if addr == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		return host
	}
	return addr.String()
}

// admitConn counts a new connection against limits.max_connections_per_ip,
// and refuses it with a BYE (sent instead of the greeting) when over.
func (s *Server) admitConn(c *imapserver.Conn) error {
	ip := hostOf(c.NetConn().RemoteAddr())
	if s.limits.acquireConn(ip) {
		return nil
	}
	s.log.Warn("connection refused: too many connections from one address", "remote", ip, "limit", s.limits.lim.MaxConnectionsPerIP)
	return &imap.Error{Type: imap.StatusResponseTypeBye,
		Text: fmt.Sprintf("too many connections from your address (limit %d)", s.limits.lim.MaxConnectionsPerIP)}
}
