package netguard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
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

// v2Signature starts a version 2 header (section 2.2).
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// v1MaxLen is the longest version 1 header, CRLF included (section 2.1).
const v1MaxLen = 107

// v2MaxLen bounds the address and TLV part of a version 2 header. The
// format allows 65535 bytes; proxies send the addresses and a few TLVs.
const v2MaxLen = 2048

// ReadProxyHeader reads a PROXY protocol header (version 1 or 2) from r,
// and nothing after it, and returns the client's address. The zero
// AddrPort with a nil error means the header names none (version 2's LOCAL
// command, which a proxy's own health checks send; UNKNOWN or UNSPEC):
// the connection's own address stands.
func ReadProxyHeader(r io.Reader) (netip.AddrPort, error) {
	buf := make([]byte, len(v2Signature))
	if _, err := io.ReadFull(r, buf); err != nil {
		return netip.AddrPort{}, err
	}
	if bytes.Equal(buf, v2Signature) {
		return readV2(r)
	}
	if bytes.HasPrefix(buf, []byte("PROXY ")) {
		return readV1(r, buf)
	}
	return netip.AddrPort{}, errors.New("no PROXY protocol header")
}

// readV1 reads the rest of a version 1 line, "PROXY TCP4 SRC DST SPORT
// DPORT\r\n", after its first bytes in line. The line is read one byte
// at a time so that nothing of what follows it is consumed.
func readV1(r io.Reader, line []byte) (netip.AddrPort, error) {
	b := make([]byte, 1)
	for !bytes.HasSuffix(line, []byte("\r\n")) {
		if len(line) >= v1MaxLen {
			return netip.AddrPort{}, errors.New("PROXY v1 header longer than 107 bytes")
		}
		if _, err := io.ReadFull(r, b); err != nil {
			return netip.AddrPort{}, fmt.Errorf("PROXY v1 header: %w", err)
		}
		line = append(line, b[0])
	}
	f := strings.Split(string(line[:len(line)-2]), " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return netip.AddrPort{}, nil // the rest is to be ignored (2.1)
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return netip.AddrPort{}, fmt.Errorf("malformed PROXY v1 header %q", line)
	}
	src, err := netip.ParseAddr(f[2])
	if err != nil || src.Zone() != "" || src.Is4() != (f[1] == "TCP4") {
		return netip.AddrPort{}, fmt.Errorf("PROXY v1 header: bad source address %q", f[2])
	}
	if dst, err := netip.ParseAddr(f[3]); err != nil || dst.Is4() != src.Is4() {
		return netip.AddrPort{}, fmt.Errorf("PROXY v1 header: bad destination address %q", f[3])
	}
	var ports [2]uint16
	for i, p := range f[4:] {
		// Decimal, no leading zero, 0 to 65535 (2.1).
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || (len(p) > 1 && p[0] == '0') {
			return netip.AddrPort{}, fmt.Errorf("PROXY v1 header: bad port %q", p)
		}
		ports[i] = uint16(n)
	}
	return netip.AddrPortFrom(src, ports[0]), nil
}

// readV2 reads the rest of a version 2 header after its signature.
func readV2(r io.Reader) (netip.AddrPort, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return netip.AddrPort{}, fmt.Errorf("PROXY v2 header: %w", err)
	}
	if hdr[0]>>4 != 2 {
		return netip.AddrPort{}, fmt.Errorf("PROXY v2 header: version %d", hdr[0]>>4)
	}
	cmd := hdr[0] & 0xf
	if cmd > 1 {
		return netip.AddrPort{}, fmt.Errorf("PROXY v2 header: command %d", cmd)
	}
	n := int(binary.BigEndian.Uint16(hdr[2:]))
	if n > v2MaxLen {
		return netip.AddrPort{}, fmt.Errorf("PROXY v2 header: %d bytes of addresses, more than %d", n, v2MaxLen)
	}
	rest := make([]byte, n)
	if _, err := io.ReadFull(r, rest); err != nil {
		return netip.AddrPort{}, fmt.Errorf("PROXY v2 header: %w", err)
	}
	if cmd == 0 { // LOCAL: the proxy speaking for itself (2.2)
		return netip.AddrPort{}, nil
	}
	// The family's high nibble: 1 INET, 2 INET6 (UNSPEC and UNIX name no
	// IP client); the low one the transport, which a TCP listener does
	// not need to check.
	var size int
	switch hdr[1] >> 4 {
	case 1:
		size = 4
	case 2:
		size = 16
	default:
		return netip.AddrPort{}, nil
	}
	if n < 2*size+4 {
		return netip.AddrPort{}, fmt.Errorf("PROXY v2 header: %d bytes, too few for the addresses", n)
	}
	src, _ := netip.AddrFromSlice(rest[:size])
	port := binary.BigEndian.Uint16(rest[2*size:])
	return netip.AddrPortFrom(src.Unmap(), port), nil
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
	client, err := ReadProxyHeader(c)
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
	if !client.IsValid() {
		return c, nil
	}
	return &proxiedConn{Conn: c, remote: net.TCPAddrFromAddrPort(client)}, nil
}

// Close closes the underlying listener and ends a waiting Accept.
func (l *proxyListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// proxiedConn is a connection through a proxy, whose remote address is
// the client's.
type proxiedConn struct {
	net.Conn
	remote net.Addr
}

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
