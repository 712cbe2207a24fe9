package imapsrv

import (
	"io"
	"net"
	"strings"
	"testing"
)

// chunkConn serves reads from chunks, one chunk (or part of it) per Read,
// and discards writes.
type chunkConn struct {
	net.Conn
	chunks []string
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error) { return len(p), nil }

// readAll reads through a guard with reads of size bufSize, calling
// between(i) after the i-th read, and returns what came out.
func readAll(t *testing.T, g *literalGuard, bufSize int, between func(int)) (string, error) {
	t.Helper()
	var out strings.Builder
	buf := make([]byte, bufSize)
	for i := 0; ; i++ {
		n, err := g.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String(), err
		}
		if between != nil {
			between(i)
		}
	}
}

func TestLiteralGuardRewrites(t *testing.T) {
	for _, c := range []struct {
		chunks []string
		buf    int
		want   string
	}{
		{[]string{"DoNe\r\n"}, 4096, "DONE\r\n"},
		{[]string{"do", "ne\r\n"}, 4096, "done\r\n"}, // split: left alone
		{[]string{"tag\r\n"}, 4096, "tag MISSING-COMMAND-NAME\r\n"},
		{[]string{"t uid \r\n"}, 4096, "t uid MISSING-COMMAND-NAME\r\n"},
		{[]string{"\r\n  \r\na NOOP\r\n"}, 4096, "a NOOP\r\n"},
		{[]string{"tag\r\n"}, 3, "tag\r\n"}, // no room: left alone
		{[]string{"a NOOP\r\nb NOOP\r\n"}, 4096, "a NOOP\r\nb NOOP\r\n"},
		{[]string{"a LOGIN {5+}\r\nalice {2+}\r\npw\r\n"}, 4096, "a LOGIN {5+}\r\nalice {2+}\r\npw\r\n"},
	} {
		g := newLiteralGuard(&chunkConn{chunks: append([]string(nil), c.chunks...)})
		got, err := readAll(t, g, c.buf, nil)
		if err != io.EOF || got != c.want {
			t.Errorf("%q (buffer %d): got %q, %v; want %q", c.chunks, c.buf, got, err, c.want)
		}
	}
}

func TestLiteralGuardDecisions(t *testing.T) {
	for _, c := range []struct {
		name   string
		input  string
		server map[int]string // written after the i-th read
		want   string
		cut    bool
	}{
		{"APPEND {n+} accepted", "a APPEND INBOX {5+}\r\nhello\r\nb NOOP\r\n", nil,
			"a APPEND INBOX {5+}\r\nhello\r\nb NOOP\r\n", false},
		{"APPEND {n+} refused", "a APPEND INBOX {5+}\r\nz DELETE x\r\n",
			map[int]string{0: "a NO [TOOBIG] too big\r\n"}, "a APPEND INBOX {5+}\r\n", true},
		{"buffered {n+} over 4096", "a CREATE {5000+}\r\nz DELETE x\r\n", nil, "a CREATE {5000+}\r\n", true},
		{"APPEND mailbox literal over 4096", "a APPEND {5000+}\r\nz DELETE x\r\n", nil, "a APPEND {5000+}\r\n", true},
		{"APPEND message over 4096", "a APPEND {5+}\r\nINBOX {5000+}\r\n" + strings.Repeat("x", 5000) + "\r\n", nil,
			"a APPEND {5+}\r\nINBOX {5000+}\r\n" + strings.Repeat("x", 5000) + "\r\n", false},
		{"sync accepted", "a LOGIN {5}\r\nalice pw\r\n", map[int]string{0: "+ Ready\r\n"},
			"a LOGIN {5}\r\nalice pw\r\n", false},
		{"sync refused", "a APPEND INBOX {5}\r\nb NOOP\r\n", map[int]string{0: "a NO [TOOBIG] x\r\n"},
			"a APPEND INBOX {5}\r\nb NOOP\r\n", false},
		{"sync ignored", "a CREATE {99999}\r\n", nil, "a CREATE {99999}\r\n", true},
		{"continuation inside a FETCH literal is not one", "a LOGIN {5}\r\nalice pw\r\n",
			map[int]string{0: "* 1 FETCH (BODY[] {9}\r\n+ Ready\r\n)\r\n"}, "a LOGIN {5}\r\n", true},
		{"tagged inside a FETCH literal is not one", "a APPEND INBOX {5+}\r\nhello\r\n",
			map[int]string{0: "* 1 FETCH (BODY[] {13}\r\na NO [TOOBIG])\r\n"}, "a APPEND INBOX {5+}\r\nhello\r\n", false},
	} {
		conn := &chunkConn{chunks: []string{c.input}}
		g := newLiteralGuard(conn)
		got, err := readAll(t, g, 4096, func(i int) {
			if w, ok := c.server[i]; ok {
				g.Write([]byte(w))
			}
		})
		if got != c.want || (err == io.EOF) != true || g.cut != c.cut {
			t.Errorf("%s: got %q (cut %v), want %q (cut %v)", c.name, got, g.cut, c.want, c.cut)
		}
	}
}

func TestLiteralAtEnd(t *testing.T) {
	for _, c := range []struct {
		line    string
		size    int64
		nonSync bool
		ok      bool
	}{
		{"a APPEND INBOX {12}\r\n", 12, false, true},
		{"a APPEND INBOX {12+}\r\n", 12, true, true},
		{"a APPEND INBOX UTF8 (~{3+}\n", 3, true, true},
		{"a NOOP\r\n", 0, false, false},
		{"{}\r\n", 0, false, false},
		{"{+}\r\n", 0, false, false},
		{"{-1}\r\n", 0, false, false},
		{"{99999999999999999999}\r\n", 0, false, false},
		{"}\r\n", 0, false, false},
	} {
		size, nonSync, ok := literalAtEnd([]byte(c.line))
		if size != c.size || nonSync != c.nonSync || ok != c.ok {
			t.Errorf("%q: %d %v %v", c.line, size, nonSync, ok)
		}
	}
}

// FuzzScanOut: the server's replies are scanned in whatever pieces
// imapserver writes them; counting continuation requests and tagged
// replies in bulk must agree with feeding the same bytes one at a time.
func FuzzScanOut(f *testing.F) {
	f.Add([]byte("* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n+ go ahead\r\nA1 OK done\r\n"), uint8(7))
	f.Add([]byte("* 1 FETCH (BODY[] {12}\r\nA1 OK fake\r\n)\r\nA2 NO real\r\n"), uint8(3))
	f.Add([]byte("* 1 FETCH (BODY[] {0}\r\n)\r\n+ \r\nB OK\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, piece uint8) {
		bulk, single := &literalGuard{}, &literalGuard{}
		step := int(piece)%64 + 1
		for i := 0; i < len(data); i += step {
			bulk.scanOut(data[i:min(i+step, len(data))])
		}
		for i := range data {
			single.scanOut(data[i : i+1])
		}
		if bulk.conts != single.conts || bulk.tagged != single.tagged || bulk.lastTaggedOK != single.lastTaggedOK ||
			bulk.out.literal != single.out.literal || string(bulk.out.head) != string(single.out.head) || string(bulk.out.tail) != string(single.out.tail) {
			t.Fatalf("in pieces of %d: conts %d tagged %d ok %v literal %d; byte by byte: conts %d tagged %d ok %v literal %d",
				step, bulk.conts, bulk.tagged, bulk.lastTaggedOK, bulk.out.literal, single.conts, single.tagged, single.lastTaggedOK, single.out.literal)
		}
		// And against the byte-at-a-time lineState.add.
		var ls lineState
		for _, c := range data {
			ls.add(c)
		}
		var lb lineState
		for i := 0; i < len(data); i += step {
			lb.addBytes(data[i:min(i+step, len(data))])
		}
		if string(ls.head) != string(lb.head) || string(ls.tail) != string(lb.tail) {
			t.Fatalf("addBytes: head %q tail %q, add: head %q tail %q", lb.head, lb.tail, ls.head, ls.tail)
		}
	})
}
