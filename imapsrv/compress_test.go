package imapsrv_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"certmail/imapsrv"
)

// deflateClientConn is the client's side of COMPRESS=DEFLATE (RFC 4978):
// each write is compressed, sync-flushed and sent in one write, as a
// zlib client sends what deflate(Z_SYNC_FLUSH) put in its buffer.
// compress/flate's writer, writing straight to the conn, sends one flush
// in five writes (a stored block's header, its data, then the empty
// stored block of the sync flush): the server decodes "LOGOUT" from the
// first three, answers and closes, and when the rest comes in after the
// close the server's kernel answers with a reset, so that the client's
// last write failed with "broken pipe" (TestCompress, under load).
type deflateClientConn struct {
	net.Conn
	buf bytes.Buffer
	w   *flate.Writer
}

func newDeflateClientConn(t testing.TB, c net.Conn) *deflateClientConn {
	t.Helper()
	dc := &deflateClientConn{Conn: c}
	w, err := flate.NewWriter(&dc.buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	dc.w = w
	return dc
}

func (c *deflateClientConn) Write(p []byte) (int, error) {
	c.buf.Reset()
	n, err := c.w.Write(p)
	if err == nil {
		err = c.w.Flush()
	}
	if err != nil {
		return n, err
	}
	if _, err := c.Conn.Write(c.buf.Bytes()); err != nil {
		return 0, err
	}
	return n, nil
}

// compress sends COMPRESS DEFLATE, which must succeed, and from then on
// compresses what rc sends and decompresses what it reads.
func (rc *rawClient) compress() {
	rc.t.Helper()
	rc.ok("COMPRESS DEFLATE")
	// rc.br holds nothing past the tagged OK: the server sends nothing
	// more until the client speaks.
	if rc.br.Buffered() != 0 {
		rc.t.Fatalf("%d bytes after COMPRESS's OK before the client spoke", rc.br.Buffered())
	}
	rc.conn = newDeflateClientConn(rc.t, rc.conn)
	rc.br = bufio.NewReader(flate.NewReader(rc.br))
}

// storedBlock is p as one non-final stored DEFLATE block (RFC 1951
// section 3.2.4): valid compressed data that costs the sender no
// compressor.
func storedBlock(p []byte) []byte {
	out := []byte{0}
	out = binary.LittleEndian.AppendUint16(out, uint16(len(p)))
	out = binary.LittleEndian.AppendUint16(out, ^uint16(len(p)))
	return append(out, p...)
}

// TestCompress: COMPRESS DEFLATE after login; commands and responses,
// literals both ways included, go compressed; CAPABILITY stops offering
// it; a second COMPRESS is NO [COMPRESSIONACTIVE] (as Dovecot answers).
func TestCompress(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("one", strings.Repeat("compressible body line\r\n", 200)))
	rc := ts.raw()
	if capsOf(t, rc.ok("CAPABILITY"))["COMPRESS=DEFLATE"] {
		t.Errorf("COMPRESS=DEFLATE offered before login")
	}
	// RFC 4978 section 5: command-auth only.
	rejects(t, rc, "COMPRESS DEFLATE")
	rc.ok(`LOGIN alice "secret pw"`)
	if !capsOf(t, rc.ok("CAPABILITY"))["COMPRESS=DEFLATE"] {
		t.Fatalf("COMPRESS=DEFLATE not offered after login")
	}
	rejects(t, rc, "COMPRESS GZIP")
	rejects(t, rc, "COMPRESS")
	rejects(t, rc, "COMPRESS DEFLATE extra")

	counter := &countingConn{Conn: rc.conn}
	rc.conn = counter
	rc.compress()
	mustContain(t, rc.ok("SELECT INBOX"), "* 1 EXISTS")
	body := mustContain(t, rc.ok("FETCH 1 BODY[]"), "* 1 FETCH")
	if !strings.Contains(body, strings.Repeat("compressible body line\r\n", 200)) {
		t.Errorf("FETCH BODY[] through compression: %q", body)
	}
	if counter.read.Load() > 2000 {
		t.Errorf("a 5 KB body of repeated lines took %d bytes compressed", counter.read.Load())
	}
	msg := simpleMessage("appended", "through compression")
	rc.ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	mustContain(t, rc.ok("UID SEARCH SUBJECT appended"), "* SEARCH 2")
	caps := capsOf(t, rc.ok("CAPABILITY"))
	if caps["COMPRESS=DEFLATE"] {
		t.Errorf("COMPRESS=DEFLATE still offered once active")
	}
	if st := rc.fail("NO", "COMPRESS DEFLATE"); !strings.Contains(st, "[COMPRESSIONACTIVE]") {
		t.Errorf("second COMPRESS: %q", st)
	}
	// The refusal leaves the session as it was, compressed.
	mustContain(t, rc.ok("UID SEARCH SUBJECT appended"), "* SEARCH 2")
	untagged, st := rc.cmd("LOGOUT")
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("LOGOUT: %q", st)
	}
	mustContain(t, untagged, "* BYE")
}

// TestDeflateClientOneWrite: the test client sends each compressed
// command in one write, as zlib clients do. Sent in pieces, a LOGOUT's
// last piece could reach the server after it had answered and closed,
// and the client's write failed ("broken pipe"; TestCompress, under
// load).
func TestDeflateClientOneWrite(t *testing.T) {
	var writes []int
	c := &recordingConn{writes: &writes}
	dc := newDeflateClientConn(t, c)
	for _, cmd := range []string{"a LOGOUT\r\n", "b NOOP\r\n", "c " + strings.Repeat("x", 10000) + "\r\n"} {
		writes = writes[:0]
		if _, err := dc.Write([]byte(cmd)); err != nil {
			t.Fatal(err)
		}
		if len(writes) != 1 {
			t.Errorf("%.10q: %d writes %v, want 1", cmd, len(writes), writes)
		}
	}
}

// recordingConn records the length of each write.
type recordingConn struct {
	net.Conn
	writes *[]int
}

func (c *recordingConn) Write(p []byte) (int, error) {
	*c.writes = append(*c.writes, len(p))
	return len(p), nil
}

// TestCompressRFCExample replays RFC 4978 section 3's example: STARTTLS,
// LOGIN, COMPRESS (compression above TLS), and COMPRESS on implicit TLS.
func TestCompressRFCExample(t *testing.T) {
	cfg := testTLSConfig(t)
	ts := newTestServer(t, func(o *imapsrv.Options) { o.TLSConfig = cfg })
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("hello", "world"))

	rc := ts.raw()
	rc.write("a starttls\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("starttls: %q", l)
	}
	tc := tls.Client(rc.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	rc.conn, rc.br = tc, bufio.NewReader(tc)
	rc.write(`b login alice "secret pw"` + "\r\n")
	if _, st := rc.readUntilTagged("b"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("login: %q", st)
	}
	rc.write("c compress deflate\r\n")
	if _, st := rc.readUntilTagged("c"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("compress: %q", st)
	}
	rc.conn = newDeflateClientConn(t, tc)
	rc.br = bufio.NewReader(flate.NewReader(rc.br))
	mustContain(t, rc.ok("EXAMINE INBOX"), "* 1 EXISTS")
	mustContain(t, rc.ok("FETCH 1 BODY[TEXT]"), "world")
	// STARTTLS is not offered again (it would go beneath compression).
	if capsOf(t, rc.ok("CAPABILITY"))["STARTTLS"] {
		t.Errorf("STARTTLS offered after COMPRESS")
	}

	// Implicit TLS from a remote address.
	tconn, err := tls.Dial("tcp", serveExtra(t, ts, true), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	rc2 := rawDial(t, tconn)
	rc2.ok(`LOGIN alice "secret pw"`)
	rc2.compress()
	mustContain(t, rc2.ok("SELECT INBOX"), "* 1 EXISTS")
	mustContain(t, rc2.ok("FETCH 1 (BODY.PEEK[TEXT])"), "world")
}

// TestCompressIdle: an update written while the server waits for the
// client (IDLE) is flushed through the compressor at once, not held
// until the client speaks.
func TestCompressIdle(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.compress()
	rc.ok("SELECT INBOX")
	rc.write("i1 IDLE\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	ts.deliver("alice", "INBOX", simpleMessage("during idle", "x"))
	line, err := rc.tryReadLine(5 * time.Second)
	if err != nil || line != "* 1 EXISTS" {
		t.Fatalf("during IDLE: %q, %v", line, err)
	}
	// The literal guard above the compression ends IDLE on "done" in
	// any case, as it does on a plain connection.
	rc.write("done\r\n")
	if _, st := rc.readUntilTagged("i1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("IDLE end: %q", st)
	}
	rc.alive()
}

// TestCompressHostile: what comes out of the decompressor is held to the
// same limits as what comes in plain: a line of 10 MB that compresses to
// a few KB (a decompression bomb) ends the connection at the command line
// limit with the same BYE; a non-synchronizing literal over APPENDLIMIT
// is refused; data that is not DEFLATE ends the connection; the server
// goes on serving others.
func TestCompressHostile(t *testing.T) {
	ts := newTestServer(t, withAppendLimit(1000))
	ts.addUser("alice")

	rc := ts.rawLogin("alice")
	rc.compress()
	bomb := "b1 NOOP " + strings.Repeat("A", 10<<20) + "\r\n"
	// The server stops reading at the limit: the write may fail.
	rc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	rc.conn.Write([]byte(bomb))
	var lines []string
	for {
		l, err := rc.tryReadLine(10 * time.Second)
		if err != nil {
			break
		}
		lines = append(lines, l)
	}
	mustContain(t, lines, "* BYE command line too long")

	rc = ts.rawLogin("alice")
	rc.compress()
	rc.write("a1 APPEND INBOX {5000+}\r\n" + strings.Repeat("x", 5000) + "\r\n")
	if _, st := rc.readUntilTagged("a1"); !strings.HasPrefix(st, "NO [TOOBIG]") {
		t.Errorf("APPEND over the limit: %q", st)
	}

	rc = ts.rawLogin("alice")
	rc.ok("COMPRESS DEFLATE")
	rc.write("\xff\xff\xff\xff garbage that is not DEFLATE\r\n")
	if l, err := rc.tryReadLine(10 * time.Second); err == nil {
		t.Errorf("after data that is not DEFLATE: %q", l)
	}

	ts.rawLogin("alice").alive()
}

// TestCompressIdleMemory: an idle compressed session holds its
// decompressor (the client may refer back 32 KB) but no compressor (half
// a MB each): the compressor goes back to a pool whenever the server
// waits for the client. 100 sessions that compressed, each got a reply and
// idle, must cost well under one compressor each.
func TestCompressIdleMemory(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	const n = 100
	heap := func() uint64 {
		var ms runtime.MemStats
		for range 2 {
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	open := func(compressed bool) {
		for i := range n {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			br := bufio.NewReader(c)
			expect := func(prefix string) {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						t.Fatalf("session %d: %v", i, err)
					}
					if strings.HasPrefix(l, prefix) {
						return
					}
				}
			}
			expect("* OK")
			fmt.Fprintf(c, "a LOGIN alice \"secret pw\"\r\n")
			expect("a OK")
			cmd := []byte("i IDLE\r\n")
			if compressed {
				fmt.Fprintf(c, "z COMPRESS DEFLATE\r\n")
				expect("z OK")
				c.Write(storedBlock([]byte("s SELECT INBOX\r\n")))
				// The reply is compressed; read some of it.
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := br.ReadByte(); err != nil {
					t.Fatal(err)
				}
				cmd = storedBlock(cmd)
			} else {
				fmt.Fprintf(c, "s SELECT INBOX\r\n")
				expect("s OK")
			}
			c.Write(cmd)
		}
		time.Sleep(300 * time.Millisecond) // every session idling
	}
	base := heap()
	open(false)
	plain := heap()
	open(true)
	compressed := heap()
	perPlain := (int64(plain) - int64(base)) / n
	perCompressed := (int64(compressed) - int64(plain)) / n
	t.Logf("heap per idle session: plain %d bytes, compressed %d bytes", perPlain, perCompressed)
	if perCompressed-perPlain > 150<<10 {
		t.Errorf("an idle compressed session costs %d bytes more than a plain one; a compressor is ~500 KB, the decompressor ~40 KB", perCompressed-perPlain)
	}
}

// countingConn counts the bytes read.
type countingConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}
