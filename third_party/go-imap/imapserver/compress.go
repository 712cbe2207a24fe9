package imapserver

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// COMPRESS=DEFLATE (RFC 4978). (certmail patch)
//
// Offered when Options.Caps has CapCompressDeflate, in the authenticated
// and selected states (RFC 4978 section 5: command-auth), over a plain
// connection, after STARTTLS and on implicit TLS alike: compression sits
// above TLS (section 4), on the IMAP bytes.
//
// The DEFLATE implementation is github.com/klauspost/compress/flate, not
// the standard library's: the standard library's reader returns what it
// has decompressed only at a sync flush (an empty stored block), so a
// client that flushes with zlib's Z_PARTIAL_FLUSH (Mail::IMAPClient does)
// would wait forever for the answer to a command the server never saw;
// klauspost's WithPartialBlock returns data at the end of every block.
// Its writer is also half the size (490 KB against 1.2 MB at BestSpeed)
// and its Reset 25 times cheaper (0.1 us against 2.6 us).
//
// Memory: the reader (36 KB) must live as long as the connection, since
// the client's stream may refer back 32 KB. The writer need not: a sync
// flush ends on a byte boundary with the client's decompressor holding
// everything, and what follows may come from a fresh writer (the stream
// is a sequence of blocks; nothing obliges a compressor to refer back).
// So the writer is taken from a pool when a response is written and
// returned as soon as the connection waits for the client: an idle
// compressed session (IDLE, or between commands) holds no writer, and the
// pool holds about as many as there are sessions writing at the same
// time. Each reply is compressed with no history of the ones before,
// which costs little: a reply is compressed as a whole (the flush comes
// when the server next reads, not per line), and IMAP's repetition is
// within a reply (FETCH lines, header fields).
//
// Level: flate.BestSpeed, whose cost per reply (CPU, and the reset of a
// pooled writer) is the lowest; on IMAP text it gives most of what the
// default level gives.
const compressLevel = flate.BestSpeed

func (c *Conn) canCompress() bool {
	return c.server.options.caps().Has(imap.CapCompressDeflate) && !c.compressed &&
		(c.state == imap.ConnStateAuthenticated || c.state == imap.ConnStateSelected)
}

func (c *Conn) handleCompress(tag string, dec *imapwire.Decoder) error {
	var mech string
	if !dec.ExpectSP() || !dec.ExpectAtom(&mech) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	if !c.server.options.caps().Has(imap.CapCompressDeflate) || !strings.EqualFold(mech, "DEFLATE") {
		return newClientBugError("Unknown compression mechanism")
	}
	if c.compressed {
		// RFC 4978 section 3: NO [COMPRESSIONACTIVE] when the
		// mechanism is active already (as Dovecot answers a second
		// COMPRESS).
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeCompressionActive,
			Text: "DEFLATE is already active",
		}
	}

	// As for STARTTLS: nothing may be written uncompressed after the OK,
	// so c.encMutex stays locked until the conn is swapped.
	enc := newResponseEncoder(c)
	defer enc.end()
	err := writeStatusResp(enc.Encoder, tag, &imap.StatusResponse{
		Type: imap.StatusResponseTypeOK,
		Text: "DEFLATE active",
	})
	if err != nil {
		return err
	}

	// Compression starts right after the tagged OK's CRLF (section 3);
	// a client must not send before it has seen it, but what it did send
	// is compressed data.
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, c.br, int64(c.br.Buffered())); err != nil {
		panic(err) // unreachable
	}
	c.mutex.Lock()
	under := c.conn
	_, c.tlsBelow = under.(*tls.Conn)
	c.mutex.Unlock()
	var conn net.Conn = newDeflateConn(under, buf.Bytes(), &c.server.deflateWriters)
	if wrap := c.server.options.WrapCompressed; wrap != nil {
		conn = wrap(conn)
	}
	c.mutex.Lock()
	c.conn = conn
	c.compressed = true
	c.mutex.Unlock()

	rw := c.server.options.wrapReadWriter(conn)
	c.br.Reset(rw)
	c.bw.Reset(rw)
	return nil
}

// deflateConn compresses what is written to it and decompresses what is
// read, with raw DEFLATE (RFC 1951) as RFC 4978 requires. Writes are
// compressed as they come and flushed (Z_SYNC_FLUSH: the client can
// decode all of it) when the server next reads from the client, at once
// while a read is waiting (an IDLE update), and on Close.
type deflateConn struct {
	net.Conn
	r io.ReadCloser

	pool *sync.Pool

	mu      sync.Mutex
	w       *flate.Writer // nil: none taken from pool
	reading int
	err     error
}

func newDeflateConn(c net.Conn, early []byte, pool *sync.Pool) *deflateConn {
	var src io.Reader = c
	if len(early) > 0 {
		src = io.MultiReader(bytes.NewReader(early), c)
	}
	return &deflateConn{Conn: c, r: flate.NewReaderOpts(src, flate.WithPartialBlock()), pool: pool}
}

// NetConn returns the connection beneath, as tls.Conn does.
func (c *deflateConn) NetConn() net.Conn { return c.Conn }

func (c *deflateConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if err := c.flushLocked(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.reading++
	c.mu.Unlock()
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.reading--
	c.mu.Unlock()
	return n, err
}

func (c *deflateConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.w == nil {
		w, _ := c.pool.Get().(*flate.Writer)
		if w == nil {
			var err error
			if w, err = flate.NewWriter(c.Conn, compressLevel); err != nil {
				panic(err) // unreachable: the level is valid
			}
		} else {
			w.Reset(c.Conn)
		}
		c.w = w
	}
	n, err := c.w.Write(p)
	if err != nil {
		c.fail(err)
		return n, err
	}
	if c.reading > 0 {
		if err := c.flushLocked(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// flushLocked sends what the writer holds and gives the writer back.
func (c *deflateConn) flushLocked() error {
	if c.err != nil {
		return c.err
	}
	if c.w == nil {
		return nil
	}
	if err := c.w.Flush(); err != nil {
		c.fail(err)
		return err
	}
	c.pool.Put(c.w)
	c.w = nil
	return nil
}

// fail records a write error; the writer is dropped (its state is
// unknown), never pooled.
func (c *deflateConn) fail(err error) {
	c.err = err
	c.w = nil
}

// Flush sends what is buffered.
func (c *deflateConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *deflateConn) Close() error {
	c.mu.Lock()
	c.flushLocked() // a BYE before closing
	c.mu.Unlock()
	// Not c.r.Close: it would race with a Read in progress, and it
	// releases nothing.
	return c.Conn.Close()
}
