package imapsrv_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzCompressedStream sends arbitrary bytes as the client's compressed
// stream after COMPRESS DEFLATE (RFC 4978), then ends its side: valid
// DEFLATE or not, a bomb or not, the server ends the session within a few
// seconds without a panic (the harness fails a test whose server logged
// one) and goes on serving others. Seeds: testdata/fuzz/FuzzCompressedStream
// and, below, streams of real commands.
func FuzzCompressedStream(f *testing.F) {
	deflate := func(s string, level int) []byte {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, level)
		w.Write([]byte(s))
		w.Flush()
		return b.Bytes()
	}
	for _, s := range []string{
		"n1 NOOP\r\n", "s SELECT INBOX\r\nf FETCH 1:* (FLAGS BODY.PEEK[])\r\n",
		"i IDLE\r\ndone\r\n", "a APPEND INBOX {5+}\r\nhello\r\n", "x " + strings.Repeat("A", 100000) + "\r\n",
	} {
		f.Add(deflate(s, flate.BestSpeed))
		f.Add(deflate(s, flate.HuffmanOnly))
	}
	f.Add([]byte{0x00, 0x05, 0x00, 0xfa, 0xff, 'n', ' ', 'N', 'O', 'O'})
	f.Add([]byte{0xff, 0xff, 0xff})
	ts := newTestServer(f)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)
	f.Fuzz(func(t *testing.T, stream []byte) {
		per := *ts
		per.t = t
		rc := per.rawLogin("alice")
		defer rc.conn.Close()
		rc.ok("COMPRESS DEFLATE")
		rc.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		rc.conn.Write(stream) // the server may stop reading: errors are fine
		rc.conn.(*net.TCPConn).CloseWrite()
		// The session ends: whatever the server says, then EOF.
		rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReader(rc.conn).WriteTo(discard{}); err != nil && !isReset(err) {
			t.Fatalf("session not ended: %v", err)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// isReset reports a connection reset, how a server that closes with
// unread data ends it.
func isReset(err error) bool { return strings.Contains(err.Error(), "connection reset") }
