package delivery

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// lmtpConn is a raw LMTP client, for sessions that stall where
// smtp.Client would not.
type lmtpConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *lmtpConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &lmtpConn{t: t, c: c, r: bufio.NewReader(c)}
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (l *lmtpConn) reply() string {
	l.t.Helper()
	for {
		line, err := l.r.ReadString('\n')
		if err != nil {
			l.t.Fatalf("reading reply: %v (so far %q)", err, line)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

// cmd sends a command and checks that the reply starts with want.
func (l *lmtpConn) cmd(line, want string) string {
	l.t.Helper()
	if _, err := fmt.Fprintf(l.c, "%s\r\n", line); err != nil {
		l.t.Fatal(err)
	}
	r := l.reply()
	if !strings.HasPrefix(r, want) {
		l.t.Fatalf("%s: got %q, want %s", line, r, want)
	}
	return r
}

// TestLMTPDeclaredSizeNotReserved: sessions that declare 50 MB with SIZE=
// and stall after DATA cost what they sent, not what they declared; a
// message sent in full still arrives whole.
func TestLMTPDeclaredSizeNotReserved(t *testing.T) {
	st := openStore(t, "alice")
	addr, _ := startLMTP(t, st, Options{MaxMessageBytes: 50 << 20}, LMTPOptions{Hostname: "gw.test"})

	const sessions = 5
	const declared = 50_000_000
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var stalled []*lmtpConn
	for range sessions {
		c := dialRaw(t, addr)
		c.reply() // greeting
		c.cmd("LHLO mta.test", "250")
		c.cmd(fmt.Sprintf("MAIL FROM:<a@example.net> SIZE=%d", declared), "250")
		c.cmd("RCPT TO:<alice@example.org>", "250")
		c.cmd("DATA", "354")
		fmt.Fprintf(c.c, "Subject: stalled\r\n\r\nthe rest never comes\r\n")
		stalled = append(stalled, c)
	}
	// The server reads DATA after sending 354; give its goroutines time
	// to get there (the old code allocated at once).
	time.Sleep(500 * time.Millisecond)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d stalled sessions declaring %d bytes allocated %d bytes", sessions, declared, grew)
	if grew > 16<<20 {
		t.Fatalf("%d stalled sessions declaring %d MB each allocated %d MB: memory was reserved for the declared size",
			sessions, declared>>20, grew>>20)
	}

	// One of them finishes a 3 MB message: the buffer grows as data
	// comes and the message is stored intact.
	c := stalled[0]
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"), 3<<20/74)
	c.c.Write(body)
	c.c.Write([]byte(".\r\n"))
	if r := c.reply(); !strings.HasPrefix(r, "250") {
		t.Fatalf("end of data: %q", r)
	}
	msgs := inbox(t, st, "alice")
	if len(msgs) != 1 {
		t.Fatalf("alice has %d messages, want 1", len(msgs))
	}
	want := append([]byte("Subject: stalled\r\n\r\nthe rest never comes\r\n"), body...)
	if !bytes.Equal(msgs[0], want) {
		t.Fatalf("stored message differs: %d bytes, want %d", len(msgs[0]), len(want))
	}
}

// TestLMTPSessionCap: beyond MaxSessions a connection gets 421 4.3.2 in
// place of the greeting and is closed; once a session ends, the next one
// is served.
func TestLMTPSessionCap(t *testing.T) {
	st := openStore(t, "alice")
	addr, _ := startLMTP(t, st, Options{}, LMTPOptions{Hostname: "gw.test", MaxSessions: 2})

	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for _, c := range []*lmtpConn{a, b} {
		if r := c.reply(); !strings.HasPrefix(r, "220") {
			t.Fatalf("greeting: %q", r)
		}
	}
	over := dialRaw(t, addr)
	r := over.reply()
	if !strings.HasPrefix(r, "421 4.3.2 ") || !strings.Contains(r, "limit 2") {
		t.Fatalf("third session got %q, want 421 4.3.2 ... limit 2", r)
	}
	if _, err := over.r.ReadByte(); err == nil {
		t.Fatal("the refused connection stays open")
	}

	// The two admitted sessions work; when one quits, a new one is
	// greeted (bounded wait: the server sees the QUIT's close).
	a.cmd("LHLO mta.test", "250")
	a.cmd("QUIT", "221")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialRaw(t, addr)
		r := c.reply()
		if strings.HasPrefix(r, "220") {
			c.cmd("LHLO mta.test", "250")
			c.cmd("MAIL FROM:<a@example.net>", "250")
			c.cmd("RCPT TO:<alice@example.org>", "250")
			c.cmd("DATA", "354")
			c.cmd("Subject: hi\r\n\r\nafter the cap\r\n.", "250")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session admitted after one quit: %q", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(inbox(t, st, "alice")); n != 1 {
		t.Fatalf("alice has %d messages, want 1", n)
	}
}
