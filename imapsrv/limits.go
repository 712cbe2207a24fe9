package imapsrv

import (
	"container/list"
	"fmt"
	"net"
	"strings"
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
	// and session counts and out of the per-address failure count.
	LoopbackExempt bool
	// LoginFreeFailures failed logins (per address and per account) are
	// answered at once; each further one is answered after LoginDelay,
	// doubling, at most maxLoginDelay. After LoginMaxFailures, logins are
	// refused without checking the password for LoginLockout. 0 for
	// LoginMaxFailures: no login limiting.
	LoginFreeFailures int
	LoginMaxFailures  int
	LoginDelay        time.Duration
	LoginLockout      time.Duration
	// MaxSearchKeys bounds the keys of one SEARCH (each flag, date,
	// header or text key, NOT and OR, nested ones included); more get
	// NO [LIMIT]. 0: no limit.
	MaxSearchKeys int
	// SearchTimeout stops a SEARCH that runs longer, with NO [LIMIT].
	// 0: no limit. A SEARCH also stops when its client hangs up.
	SearchTimeout time.Duration
}

const (
	// maxLoginDelay caps the delay of one answer, below go-imap's 30s
	// command read timeout's spirit: a slow NO, not a hung connection.
	maxLoginDelay = 30 * time.Second
	// maxFailureEntries bounds each failure table: an attacker cycling
	// through addresses or names evicts the oldest entries, it does not
	// grow memory.
	maxFailureEntries = 10000
)

// limiter holds the in-memory state of Limits for one Server.
type limiter struct {
	lim Limits
	now func() time.Time

	mu       sync.Mutex
	conns    map[string]int // by address
	sessions map[string]int // by account

	byIP, byAcct *failureTable
}

func newLimiter(l Limits) *limiter {
	if l.LoginLockout <= 0 {
		l.LoginLockout = 15 * time.Minute
	}
	return &limiter{
		lim:      l,
		now:      time.Now,
		conns:    make(map[string]int),
		sessions: make(map[string]int),
		byIP:     newFailureTable(maxFailureEntries),
		byAcct:   newFailureTable(maxFailureEntries),
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

// loginBlocked says how long logins from ip or to acct stay refused
// (zero: not blocked).
func (l *limiter) loginBlocked(ip, acct string) time.Duration {
	if l.lim.LoginMaxFailures <= 0 {
		return 0
	}
	now := l.now()
	wait := l.byAcct.lockedFor(acct, now, l.lim.LoginLockout)
	if !l.exempt(ip) {
		wait = max(wait, l.byIP.lockedFor(ip, now, l.lim.LoginLockout))
	}
	return wait
}

// loginFailed records a failure and returns how long to delay the answer,
// the failure count that decided it, and the lockout it started (if any).
func (l *limiter) loginFailed(ip, acct string) (delay time.Duration, failures int, lockout time.Duration) {
	if l.lim.LoginMaxFailures <= 0 {
		return 0, 0, 0
	}
	now := l.now()
	failures = l.byAcct.fail(acct, now, l.lim.LoginLockout, l.lim.LoginMaxFailures)
	if !l.exempt(ip) {
		failures = max(failures, l.byIP.fail(ip, now, l.lim.LoginLockout, l.lim.LoginMaxFailures))
	}
	if failures >= l.lim.LoginMaxFailures {
		lockout = l.lim.LoginLockout
	}
	if n := failures - l.lim.LoginFreeFailures; n > 0 && l.lim.LoginDelay > 0 {
		delay = l.lim.LoginDelay
		for i := 1; i < n && delay < maxLoginDelay; i++ {
			delay *= 2
		}
		delay = min(delay, maxLoginDelay)
	}
	return delay, failures, lockout
}

// loginSucceeded forgets the failures of the account and the address: the
// person who knows the password is not to be slowed by earlier typos.
func (l *limiter) loginSucceeded(ip, acct string) {
	l.byAcct.forget(acct)
	l.byIP.forget(ip)
}

// failureTable counts recent failures by key, in a bounded LRU.
type failureTable struct {
	mu      sync.Mutex
	max     int
	entries map[string]*list.Element
	order   *list.List // front: most recently used
}

type failureEntry struct {
	key         string
	n           int
	last        time.Time
	lockedUntil time.Time
}

func newFailureTable(max int) *failureTable {
	return &failureTable{max: max, entries: make(map[string]*list.Element), order: list.New()}
}

// get returns key's live entry, dropping it if it has expired: failures
// are forgotten `forget` after the last one, once any lockout is over.
func (t *failureTable) get(key string, now time.Time, forget time.Duration) *failureEntry {
	el, ok := t.entries[key]
	if !ok {
		return nil
	}
	e := el.Value.(*failureEntry)
	if now.After(e.lockedUntil) && now.Sub(e.last) > forget {
		t.order.Remove(el)
		delete(t.entries, key)
		return nil
	}
	return e
}

func (t *failureTable) lockedFor(key string, now time.Time, forget time.Duration) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.get(key, now, forget); e != nil && now.Before(e.lockedUntil) {
		return e.lockedUntil.Sub(now)
	}
	return 0
}

func (t *failureTable) fail(key string, now time.Time, lockout time.Duration, maxFailures int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.get(key, now, lockout)
	if e == nil {
		e = &failureEntry{key: key}
		t.entries[key] = t.order.PushFront(e)
		for t.order.Len() > t.max {
			old := t.order.Back()
			t.order.Remove(old)
			delete(t.entries, old.Value.(*failureEntry).key)
		}
	} else {
		t.order.MoveToFront(t.entries[key])
	}
	if !now.Before(e.lockedUntil) && !e.lockedUntil.IsZero() {
		// A lockout has run out: start counting again, so that the next
		// failures are slowed before another lockout.
		e.n, e.lockedUntil = 0, time.Time{}
	}
	e.n++
	e.last = now
	if e.n >= maxFailures {
		e.lockedUntil = now.Add(lockout)
	}
	return e.n
}

func (t *failureTable) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.entries[key]; ok {
		t.order.Remove(el)
		delete(t.entries, key)
	}
}

func (t *failureTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.order.Len()
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

// limitAccountKey is the account a login names, spelled as the store
// would (case-insensitive), bounded so a huge name costs nothing.
func limitAccountKey(username string) string {
	k := strings.ToLower(username)
	if len(k) > 128 {
		k = k[:128]
	}
	return k
}

// tryAgainError is the answer to a locked-out login: UNAVAILABLE (RFC
// 5530: "temporary failure"), with the wait in whole seconds, rounded up.
func tryAgainError(wait time.Duration) error {
	secs := int((wait + time.Second - 1) / time.Second)
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
		Text: fmt.Sprintf("too many failed logins, try again in %ds", secs)}
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
