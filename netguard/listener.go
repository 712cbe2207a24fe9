package netguard

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Backoff bounds of a failing Accept: the first retry waits minBackoff,
// each further one twice as long, at most maxBackoff (net/http's values).
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// refuseWriteTimeout bounds the write of a refusal to a client that does
// not read.
const refuseWriteTimeout = 2 * time.Second

// Options configure a guarded listener. The zero value caps nothing and
// only makes Accept survive errors.
type Options struct {
	// Name says which listener in log lines ("imap", "http", ...).
	Name   string
	Logger *slog.Logger
	// MaxConns bounds the connections open at once; one more is refused.
	// 0: no limit.
	MaxConns int
	// MaxConnsPerIP bounds the connections open at once from one client
	// address; one more is refused. 0: no limit.
	MaxConnsPerIP int
	// LoopbackExempt leaves loopback clients (a proxy or webmail on the
	// same host, whose users all share one address) out of MaxConnsPerIP.
	LoopbackExempt bool
	// Refusal, if set, is written to a refused connection before it is
	// closed: the protocol's way of saying "too busy" (an SMTP 421, an
	// HTTP 503). perIP tells which limit was hit, limit its value.
	Refusal func(perIP bool, limit int) []byte
}

// Listener is a net.Listener whose Accept retries on errors and applies
// the connection caps of its Options.
type Listener struct {
	net.Listener
	opts Options
	log  *slog.Logger

	closeOnce sync.Once
	closed    chan struct{}

	mu      sync.Mutex
	total   int
	perIP   map[string]int
	lastLog time.Time
}

// Guard wraps ln. Closing the returned listener closes ln; connections
// it returned count against the caps until they are closed.
func Guard(ln net.Listener, opts Options) *Listener {
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	return &Listener{
		Listener: ln,
		opts:     opts,
		log:      lg.With("listener", opts.Name),
		closed:   make(chan struct{}),
		perIP:    make(map[string]int),
	}
}

// Accept waits for a connection within the caps. Errors from the
// underlying listener are logged and retried after a growing pause, so
// that running out of descriptors slows the listener down instead of
// stopping it; only Close (or closing the underlying listener) ends it,
// with an error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return nil, fmt.Errorf("%s: %w", l.opts.Name, net.ErrClosed)
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			if delay == 0 {
				delay = minBackoff
			} else {
				delay = min(2*delay, maxBackoff)
			}
			// Once per doubling, not once per failure: a listener out of
			// descriptors would otherwise log hundreds of lines a second.
			if delay < maxBackoff || l.logDue() {
				l.log.Warn("accept failed; retrying", "err", err, "retry_in", delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return nil, fmt.Errorf("%s: %w", l.opts.Name, net.ErrClosed)
			}
			continue
		}
		delay = 0
		if gc, ok := l.admit(c); ok {
			return gc, nil
		}
	}
}

// logEvery limits the log lines of a listener that keeps failing at the
// longest backoff.
const logEvery = 10 * time.Second

func (l *Listener) logDue() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.lastLog) < logEvery {
		return false
	}
	l.lastLog = now
	return true
}

// admit counts c against the caps, or refuses and closes it.
func (l *Listener) admit(c net.Conn) (net.Conn, bool) {
	ip := hostOf(c.RemoteAddr())
	perIP := l.opts.MaxConnsPerIP > 0 && !(l.opts.LoopbackExempt && isLoopback(ip))
	l.mu.Lock()
	switch {
	case l.opts.MaxConns > 0 && l.total >= l.opts.MaxConns:
		l.mu.Unlock()
		l.refuse(c, ip, false, l.opts.MaxConns)
		return nil, false
	case perIP && l.perIP[ip] >= l.opts.MaxConnsPerIP:
		l.mu.Unlock()
		l.refuse(c, ip, true, l.opts.MaxConnsPerIP)
		return nil, false
	}
	l.total++
	if perIP {
		l.perIP[ip]++
	}
	l.mu.Unlock()
	return &conn{Conn: c, release: func() { l.release(ip, perIP) }}, true
}

func (l *Listener) release(ip string, perIP bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if perIP {
		if l.perIP[ip]--; l.perIP[ip] <= 0 {
			delete(l.perIP, ip)
		}
	}
}

// refuse tells c why (if the protocol has a way) and closes it, without
// holding up Accept for a client that does not read.
func (l *Listener) refuse(c net.Conn, ip string, perIP bool, limit int) {
	which := "max_connections"
	if perIP {
		which = "max_connections_per_ip"
	}
	l.log.Warn("connection refused: over the limit", "remote", ip, "limit", which, "value", limit)
	if l.opts.Refusal == nil {
		c.Close()
		return
	}
	msg := l.opts.Refusal(perIP, limit)
	go func() {
		c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		c.Write(msg)
		c.Close()
	}()
}

// Close closes the underlying listener and ends a waiting Accept.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// Open reports the connections accepted and not yet closed.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// conn releases its place under the caps once, on the first Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the connection beneath, as tls.Conn's does.
func (c *conn) NetConn() net.Conn { return c.Conn }

// SyscallConn reaches the socket beneath, for code that reads its state
// (imapsrv asks TCP whether a searching client hung up): the guard must
// not hide it.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("netguard: no socket beneath the connection")
}

// hostOf is the IP of a remote address, or the whole address when it has
// none (a Unix socket).
func hostOf(addr net.Addr) string {
	switch a := addr.(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
		return ""
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		return host
	}
	return addr.String()
}

func isLoopback(ip string) bool {
	p := net.ParseIP(ip)
	return p != nil && p.IsLoopback()
}
