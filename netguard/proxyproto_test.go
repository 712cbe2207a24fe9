package netguard

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// v2Signature starts a version 2 header (proxy-protocol.txt, 2.2).
var v2Signature = proxyproto.SIGV2

// v2Header builds a version 2 header: command (0 LOCAL, 1 PROXY), family
// byte, the address block and TLVs as given.
func v2Header(cmd, fam byte, rest []byte) []byte {
	h := append([]byte{}, v2Signature...)
	h = append(h, 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(h[14:], uint16(len(rest)))
	return append(h, rest...)
}

func v2Inet(src, dst netip.AddrPort, tlvs []byte) []byte {
	var b []byte
	b = append(b, src.Addr().AsSlice()...)
	b = append(b, dst.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	fam := byte(0x11)
	if src.Addr().Is6() {
		fam = 0x21
	}
	return v2Header(1, fam, append(b, tlvs...))
}

func TestReadProxyHeader(t *testing.T) {
	src4 := netip.MustParseAddrPort("192.0.2.7:4242")
	dst4 := netip.MustParseAddrPort("10.0.0.11:1143")
	src6 := netip.MustParseAddrPort("[2001:db8::7]:4242")
	dst6 := netip.MustParseAddrPort("[2001:db8::11]:1143")
	for _, tc := range []struct {
		name   string
		in     []byte
		want   netip.AddrPort // zero: the header names no client
		errHas string
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.7 10.0.0.11 4242 1143\r\n"), src4, ""},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::7 2001:db8::11 4242 1143\r\n"), src6, ""},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), netip.AddrPort{}, ""},
		{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n"), netip.AddrPort{}, ""},
		{"v1 family mismatch", []byte("PROXY TCP4 2001:db8::7 10.0.0.11 4242 1143\r\n"), netip.AddrPort{}, "invalid address"},
		{"v1 leading zero port", []byte("PROXY TCP4 192.0.2.7 10.0.0.11 04242 1143\r\n"), netip.AddrPort{}, "invalid port number"},
		{"v1 port too big", []byte("PROXY TCP4 192.0.2.7 10.0.0.11 65536 1143\r\n"), netip.AddrPort{}, "invalid port number"},
		{"v1 missing field", []byte("PROXY TCP4 192.0.2.7 10.0.0.11 4242\r\n"), netip.AddrPort{}, "can't read address family"},
		{"v1 bare LF", []byte("PROXY TCP4 192.0.2.7 10.0.0.11 4242 1143\n"), netip.AddrPort{}, "must end with"},
		{"v1 no CRLF", []byte("PROXY TCP4 192.0.2.7 10.0.0.11 4242 1143\nnext line\r\n"), netip.AddrPort{}, "must end with"},
		{"v1 too long", []byte("PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n"), netip.AddrPort{}, "107 bytes or less"},
		{"v2 INET", v2Inet(src4, dst4, nil), src4, ""},
		{"v2 INET6", v2Inet(src6, dst6, nil), src6, ""},
		{"v2 INET with TLVs", v2Inet(src4, dst4, []byte{0x04, 0, 3, 'a', 'b', 'c'}), src4, ""},
		{"v2 LOCAL", v2Header(0, 0, nil), netip.AddrPort{}, ""},
		{"v2 LOCAL with addresses", v2Header(0, 0x11, make([]byte, 12)), netip.AddrPort{}, ""},
		{"v2 PROXY with UNSPEC", v2Header(1, 0x00, nil), netip.AddrPort{}, "unsupported address family"},
		{"v2 UNIX", v2Header(1, 0x31, make([]byte, 216)), netip.AddrPort{}, ""},
		{"v2 short INET", v2Header(1, 0x11, make([]byte, 8)), netip.AddrPort{}, "invalid length"},
		{"v2 bad command", v2Header(2, 0x11, make([]byte, 12)), netip.AddrPort{}, "unsupported proxy protocol version and command"},
		{"v2 bad version", append(append([]byte{}, v2Signature...), 0x11, 0x11, 0, 0), netip.AddrPort{}, "unsupported proxy protocol version and command"},
		{"v2 too long", v2Header(1, 0x11, make([]byte, 65000)), netip.AddrPort{}, "invalid length"},
		{"v2 truncated", v2Inet(src4, dst4, nil)[:20], netip.AddrPort{}, "EOF"},
		{"no header", []byte("a001 LOGIN alice secret\r\n"), netip.AddrPort{}, "no PROXY protocol header"},
		{"empty", nil, netip.AddrPort{}, "EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.errHas != "" {
				got, err := ReadProxyHeader(bufio.NewReader(bytes.NewReader(tc.in)))
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("got %v, %v; want an error with %q", got, err, tc.errHas)
				}
				return
			}
			// What follows the header stays unread, for the protocol.
			const after = "* OK after the header\r\n"
			r := bufio.NewReader(bytes.NewReader(append(append([]byte{}, tc.in...), after...)))
			got, err := ReadProxyHeader(r)
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
			if rest, _ := io.ReadAll(r); string(rest) != after {
				t.Fatalf("left %q after the header, want %q", rest, after)
			}
		})
	}
}

// FuzzReadProxyHeader: any input is read without a panic, never past
// the longest header, and an accepted header is one of the two formats.
func FuzzReadProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 10.0.0.11 4242 1143\r\nrest"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Inet(netip.MustParseAddrPort("[2001:db8::7]:1"), netip.MustParseAddrPort("[2001:db8::8]:2"), []byte{1, 0, 0}))
	f.Add(v2Header(0, 0, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		client, err := ReadProxyHeader(r)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(in, v2Signature) && !bytes.HasPrefix(in, []byte("PROXY ")) {
			t.Fatalf("accepted %q", in)
		}
		if client.IsValid() && (!client.Addr().IsValid() || client.Addr().Is4In6()) {
			t.Fatalf("client %v from %q", client, in)
		}
	})
}

// proxyServer runs ProxyProtocol over a loopback listener trusting
// trusted, and returns its address and the accepted connections.
func proxyServer(t *testing.T, trusted ...string) (string, <-chan net.Conn, net.Listener) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []netip.Prefix
	for _, p := range trusted {
		prefixes = append(prefixes, netip.MustParsePrefix(p))
	}
	ln := ProxyProtocol(raw, prefixes, nil)
	t.Cleanup(func() { ln.Close() })
	conns := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- c
		}
	}()
	return raw.Addr().String(), conns, ln
}

func nextConn(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		if c == nil {
			t.Fatal("the listener stopped")
		}
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted in 5s")
	}
	return nil
}

func dial(t *testing.T, addr string, send []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(send); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProxyProtocolListener: a connection from a trusted proxy is the
// client its header names, with the bytes after the header intact; one
// whose header is missing is closed, never served as the proxy; one slow
// to send its header holds up no other; connections from elsewhere are
// served as they come; Close ends Accept.
func TestProxyProtocolListener(t *testing.T) {
	addr, conns, ln := proxyServer(t, "127.0.0.0/8")

	dial(t, addr, []byte("PROXY TCP4 ")) // the rest never comes
	client := netip.MustParseAddrPort("192.0.2.7:4242")
	dial(t, addr, append(v2Inet(client, netip.MustParseAddrPort("127.0.0.1:1143"), nil), "a001 NOOP\r\n"...))
	c := nextConn(t, conns)
	if got := c.RemoteAddr().String(); got != client.String() {
		t.Fatalf("RemoteAddr %s, want %s", got, client)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "a001 NOOP\r\n" {
		t.Fatalf("after the header: %q %v", line, err)
	}

	// A proxy's own check: LOCAL, the connection's address stands.
	dial(t, addr, v2Header(0, 0, nil))
	if c := nextConn(t, conns); !strings.HasPrefix(c.RemoteAddr().String(), "127.0.0.1:") {
		t.Fatalf("LOCAL: RemoteAddr %s", c.RemoteAddr())
	}

	// No header from a trusted address: closed, not accepted.
	bad := dial(t, addr, []byte("a001 LOGIN alice secret\r\n"))
	bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ne net.Error
	if n, err := bad.Read(make([]byte, 1)); n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a trusted connection without a header: read %d, %v; want it closed", n, err)
	}
	select {
	case c := <-conns:
		t.Fatalf("accepted %v without a header", c.RemoteAddr())
	case <-time.After(100 * time.Millisecond):
	}

	ln.Close()
	select {
	case _, ok := <-conns:
		if ok {
			t.Fatal("a connection after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not end on Close")
	}

	// Not from a trusted proxy: served as it comes, a PROXY line
	// included (it is the client's data, not a header).
	addr, conns, _ = proxyServer(t, "10.0.0.10/32")
	dial(t, addr, []byte("PROXY TCP4 192.0.2.7 10.0.0.11 4242 1143\r\n"))
	c = nextConn(t, conns)
	if !strings.HasPrefix(c.RemoteAddr().String(), "127.0.0.1:") {
		t.Fatalf("untrusted: RemoteAddr %s", c.RemoteAddr())
	}
	if line, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "PROXY TCP4") {
		t.Fatalf("untrusted: read %q", line)
	}
}
