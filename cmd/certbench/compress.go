package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/klauspost/compress/flate"
)

// dialCompressed logs in over a raw connection, turns on COMPRESS=DEFLATE
// (RFC 4978), and hands the compressed session to go-imap's client (which
// has no COMPRESS of its own) as if it had been greeted with PREAUTH.
//
// What the client sends goes as stored DEFLATE blocks (valid compressed
// data that costs this side no compressor: a thousand compressors would
// be half a GB in certbench's own memory); what the server sends is
// decompressed with a reader that returns data at every block's end. The
// server compresses its side as it would for any client.
func dialCompressed(addr, user, password string, opts *imapclient.Options) (*imapclient.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return compressedSession(conn, user, password, opts)
}

// compressedSession is dialCompressed on a connection already made (the
// session mix counts its bytes).
func compressedSession(conn net.Conn, user, password string, opts *imapclient.Options) (*imapclient.Client, error) {
	br := bufio.NewReader(conn)
	fail := func(err error) (*imapclient.Client, error) {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := expectTagged(br, "*"); err != nil {
		return fail(fmt.Errorf("greeting: %w", err))
	}
	fmt.Fprintf(conn, "c1 LOGIN %s %s\r\n", quoted(user), quoted(password))
	if _, err := expectTagged(br, "c1"); err != nil {
		return fail(fmt.Errorf("LOGIN: %w", err))
	}
	fmt.Fprintf(conn, "c2 COMPRESS DEFLATE\r\n")
	if _, err := expectTagged(br, "c2"); err != nil {
		return fail(fmt.Errorf("COMPRESS: %w", err))
	}
	if br.Buffered() > 0 {
		return fail(fmt.Errorf("COMPRESS: %d bytes before the client spoke", br.Buffered()))
	}
	conn.SetDeadline(time.Time{})
	cc := &compressedConn{
		Conn: conn,
		r: io.MultiReader(strings.NewReader("* PREAUTH compressed\r\n"),
			flate.NewReaderOpts(br, flate.WithPartialBlock())),
	}
	return imapclient.New(cc, opts), nil
}

// expectTagged reads lines up to the one tagged tag ("*": the first
// line) and fails unless it is OK.
func expectTagged(br *bufio.Reader, tag string) (string, error) {
	for range 1000 {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return "", fmt.Errorf("%s", strings.TrimSpace(line))
			}
			return line, nil
		}
	}
	return "", fmt.Errorf("no tagged answer in 1000 lines")
}

func quoted(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// compressedConn reads the decompressed server stream and writes stored
// DEFLATE blocks (RFC 1951 section 3.2.4).
type compressedConn struct {
	net.Conn
	r io.Reader
}

func (c *compressedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *compressedConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 0xffff)
		block := make([]byte, 5, 5+k)
		binary.LittleEndian.PutUint16(block[1:], uint16(k))
		binary.LittleEndian.PutUint16(block[3:], ^uint16(k))
		block = append(block, p[:k]...)
		if _, err := c.Conn.Write(block); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}
