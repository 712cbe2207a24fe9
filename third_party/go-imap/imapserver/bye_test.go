package imapserver

// certmail patch: Bye takes the locks COMPRESS and STARTTLS swap c.conn
// under (see Conn.Bye).

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// byeTestConn is a net.Conn with nothing in it that orders goroutines
// (no lock, no system call), so that the race detector sees only the
// ordering Conn itself provides. Reads come from r; writes and Close do
// nothing.
type byeTestConn struct {
	r *strings.Reader
}

func (c *byeTestConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *byeTestConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *byeTestConn) Close() error                       { return nil }
func (c *byeTestConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *byeTestConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *byeTestConn) SetDeadline(t time.Time) error      { return nil }
func (c *byeTestConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *byeTestConn) SetWriteDeadline(t time.Time) error { return nil }

// TestByeDuringConnSwap: a BYE from another goroutine (a server shutting
// down, a deleted account) followed by COMPRESS or STARTTLS, which swap
// c.conn. Bye read c.conn to close it after releasing the encoder lock,
// under no lock: run with -race, the swap that follows was reported as a
// data race. Bye runs first (the sleep; nothing else may order the two,
// or the race detector would see an order that the code does not
// guarantee), which is the interleaving that raced; the other one
// (the swap first) was ordered by the encoder lock already.
func TestByeDuringConnSwap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		state   imap.ConnState
		args    string
		options Options
		handle  func(c *Conn, dec *imapwire.Decoder) error
	}{{
		name:    "COMPRESS",
		state:   imap.ConnStateAuthenticated,
		args:    " DEFLATE\r\n",
		options: Options{Caps: imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapCompressDeflate: {}}},
		handle:  func(c *Conn, dec *imapwire.Decoder) error { return c.handleCompress("a", dec) },
	}, {
		name:    "STARTTLS",
		state:   imap.ConnStateNotAuthenticated,
		args:    "\r\n",
		options: Options{Caps: imap.CapSet{imap.CapIMAP4rev1: {}}, TLSConfig: &tls.Config{}},
		handle:  func(c *Conn, dec *imapwire.Decoder) error { return c.handleStartTLS("a", dec) },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConn(&byeTestConn{r: strings.NewReader(tc.args)}, New(&tc.options))
			c.state = tc.state
			done := make(chan error, 1)
			go func() { done <- c.Bye("Server shutting down") }()
			time.Sleep(50 * time.Millisecond)
			dec := imapwire.NewDecoder(c.br, imapwire.ConnSideServer)
			if err := tc.handle(c, dec); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if err := <-done; err != nil {
				t.Fatalf("Bye: %v", err)
			}
			if _, ok := c.NetConn().(*byeTestConn); ok {
				t.Errorf("%s did not replace the conn", tc.name)
			}
		})
	}
}
