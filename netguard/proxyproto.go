package netguard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"
)

// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): a
// TCP proxy in front of the server (HAProxy's send-proxy-v2, nginx's
// proxy_protocol) starts each connection it opens with a header naming
// the client's address. Without it every client looks like the proxy, and
// whatever certmail does per address (connection caps, failed-login
// counts, trusted LMTP clients, logs) lumps all of them together.

// proxyHeaderTimeout bounds the wait for a header; a proxy sends it with
// the connection, at once.
const proxyHeaderTimeout = 5 * time.Second

// ReadProxyHeader reads a PROXY protocol header (version 1 or 2) from r
// and returns the client's address; what follows the header stays in r.
// The parsing is go-proxyproto's; what certmail decides is what a header
// means for it. The zero AddrPort with a nil error means the header names
// no IP client (version 2's LOCAL command, which a proxy's own health
// checks send; UNKNOWN, UNSPEC or a UNIX socket): the connection's own
// address stands. A connection from a trusted proxy without a header is
// an error, never the proxy itself speaking (proxy-protocol.txt, 2: the
// receiver must not guess).
func ReadProxyHeader(r *bufio.Reader) (netip.AddrPort, error) {
	h, err := proxyproto.Read(r)
	if err != nil {
		if errors.Is(err, proxyproto.ErrNoProxyProtocol) {
			if _, perr := r.Peek(1); perr != nil {
				return netip.AddrPort{}, fmt.Errorf("no PROXY protocol header: %w", perr)
			}
			return netip.AddrPort{}, errors.New("no PROXY protocol header")
		}
		return netip.AddrPort{}, fmt.Errorf("PROXY protocol header: %w", err)
	}
	if h.Command != proxyproto.PROXY {
		return netip.AddrPort{}, nil
	}
	src, _, ok := h.TCPAddrs()
	if !ok {
		return netip.AddrPort{}, nil
	}
	ap := src.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// ProxyProtocol wraps ln: a connection from one of the trusted proxies
// must start with a PROXY protocol header, and its RemoteAddr is then the
// client's address the header names; one without a valid header is
// closed (it would otherwise pass as the proxy). Connections from other
// addresses are served as they come, without a header. The header is
// read apart from Accept, so that a proxy slow to send it holds up no
// other client.
func ProxyProtocol(ln net.Listener, trusted []netip.Prefix, logger *slog.Logger) net.Listener {
	if logger == nil {
		logger = slog.Default()
	}
	return &proxyListener{Listener: ln, trusted: trusted, log: logger,
		results: make(chan acceptResult), done: make(chan struct{})}
}

type proxyListener struct {
	net.Listener
	trusted []netip.Prefix
	log     *slog.Logger

	startOnce sync.Once
	closeOnce sync.Once
	results   chan acceptResult
	done      chan struct{}
}

type acceptResult struct {
	c   net.Conn
	err error
}

// Accept returns the next connection ready to serve, or the underlying
// listener's error (which the caller may retry: see Listener.Accept).
func (l *proxyListener) Accept() (net.Conn, error) {
	l.startOnce.Do(func() { go l.loop() })
	select {
	case r := <-l.results:
		return r.c, r.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// loop accepts connections and hands them to Accept, those from a
// trusted proxy once their header is read. An accept error is handed
// over too, and waits there for the caller's next Accept, so that the
// caller's pause after an error paces this loop as well.
func (l *proxyListener) loop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !l.deliver(acceptResult{err: err}) {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				l.closeOnce.Do(func() { close(l.done) })
				return
			}
			continue
		}
		if !l.fromProxy(c.RemoteAddr()) {
			if !l.deliver(acceptResult{c: c}) {
				c.Close()
				return
			}
			continue
		}
		go func() {
			pc, err := l.handshake(c)
			if err != nil {
				c.Close()
				return
			}
			if !l.deliver(acceptResult{c: pc}) {
				pc.Close()
			}
		}()
	}
}

func (l *proxyListener) deliver(r acceptResult) bool {
	select {
	case l.results <- r:
		return true
	case <-l.done:
		return false
	}
}

func (l *proxyListener) fromProxy(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// handshake reads c's header and returns c as the client it names.
func (l *proxyListener) handshake(c net.Conn) (net.Conn, error) {
	c.SetReadDeadline(time.Now().Add(proxyHeaderTimeout))
	// The reader may hold bytes past the header (the client's first
	// command): the connection returned reads through it.
	r := bufio.NewReader(c)
	client, err := ReadProxyHeader(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			// Connected and closed without a byte: a proxy's TCP check.
			l.log.Debug("connection from a proxy closed before a PROXY header", "proxy", c.RemoteAddr())
		} else {
			l.log.Warn("connection from a proxy refused: no valid PROXY protocol header", "proxy", c.RemoteAddr(), "err", err)
		}
		return nil, err
	}
	c.SetReadDeadline(time.Time{})
	remote := c.RemoteAddr()
	if client.IsValid() {
		remote = net.TCPAddrFromAddrPort(client)
	}
	return &proxiedConn{Conn: c, r: r, remote: remote}, nil
}

// Close closes the underlying listener and ends a waiting Accept.
func (l *proxyListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// proxiedConn is a connection through a proxy, whose remote address is
// the client's, read through the reader that took its header.
type proxiedConn struct {
	net.Conn
	r      *bufio.Reader
	remote net.Addr
}

func (c *proxiedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }

// NetConn returns the connection beneath, as tls.Conn's does.
func (c *proxiedConn) NetConn() net.Conn { return c.Conn }

// SyscallConn reaches the socket beneath (see conn.SyscallConn).
func (c *proxiedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("netguard: no socket beneath the connection")
}
