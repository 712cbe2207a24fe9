package imapsrv

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes chan int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes <- len(p)
	return c.Conn.Write(p)
}

func coalescePair(t *testing.T) (*coalescingConn, *countingConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{Conn: server, writes: make(chan int, 1000)}
	c := newCoalescingConn(cc)
	t.Cleanup(func() { c.Close(); client.Close() })
	return c, cc, client
}

func TestCoalescingConnWritesOnceBeforeRead(t *testing.T) {
	c, cc, client := coalescePair(t)
	for i := 0; i < 100; i++ {
		if _, err := c.Write([]byte("* 1 FETCH (FLAGS (\\Seen))\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.Write([]byte("a NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	// The server reads the next command: what it wrote goes out first,
	// in one write.
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "a NOOP\r\n" {
		t.Fatalf("read %q %v", line, err)
	}
	if n := len(cc.writes); n != 1 {
		t.Fatalf("%d writes, want 1", n)
	}
	got := make([]byte, 100*len("* 1 FETCH (FLAGS (\\Seen))\r\n"))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(got), "FETCH") != 100 {
		t.Fatalf("client got %q", got)
	}
}

func TestCoalescingConnWritesThroughWhileReading(t *testing.T) {
	c, _, client := coalescePair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 16)
		c.Read(buf) // blocks: the client says nothing (an IDLE)
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := c.Write([]byte("* 5 EXISTS\r\n")); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || line != "* 5 EXISTS\r\n" {
		t.Fatalf("client read %q %v", line, err)
	}
	client.Write([]byte("DONE\r\n"))
	<-done
}

func TestCoalescingConnFlushesByItself(t *testing.T) {
	c, _, client := coalescePair(t)
	// Written, and then neither read nor written: it still goes out.
	if _, err := c.Write([]byte("+ go ahead\r\n")); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || line != "+ go ahead\r\n" {
		t.Fatalf("client read %q %v", line, err)
	}
}

func TestCoalescingConnCloseFlushes(t *testing.T) {
	c, _, client := coalescePair(t)
	c.Write([]byte("* BYE shutting down\r\n"))
	c.Close()
	client.SetReadDeadline(time.Now().Add(time.Second))
	b, err := io.ReadAll(client)
	if err != nil || string(b) != "* BYE shutting down\r\n" {
		t.Fatalf("client read %q %v", b, err)
	}
}

func TestCoalescingConnLargeWrites(t *testing.T) {
	c, _, client := coalescePair(t)
	big := strings.Repeat("x", 3*coalesceMax)
	go func() {
		c.Write([]byte("* 1 FETCH (BODY[] {" + "98304" + "}\r\n"))
		c.Write([]byte(big))
		c.Write([]byte(")\r\n"))
		c.Flush()
	}()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	want := len("* 1 FETCH (BODY[] {98304}\r\n") + len(big) + len(")\r\n")
	got := make([]byte, want)
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(got), "x)\r\n") {
		t.Fatalf("bad tail %q", got[len(got)-10:])
	}
}

// crypto/tls sends close_notify and then sets the write deadline to now
// before closing: what was buffered must still go out.
func TestCoalescingConnPastDeadlineFlushes(t *testing.T) {
	c, _, client := coalescePair(t)
	c.Write([]byte("* BYE logging out\r\n"))
	c.SetWriteDeadline(time.Now())
	c.Close()
	client.SetReadDeadline(time.Now().Add(time.Second))
	b, err := io.ReadAll(client)
	if err != nil || string(b) != "* BYE logging out\r\n" {
		t.Fatalf("client read %q %v", b, err)
	}
}

// imapserver sets a write deadline before each response line and clears
// it after; the bytes it wrote must still be sent under that deadline when
// they leave the buffer later, or a client that stops reading would hold
// the session's goroutine forever.
func TestCoalescingConnFlushKeepsWriteDeadline(t *testing.T) {
	c, _, _ := coalescePair(t) // the client never reads
	line := []byte(strings.Repeat("x", 30<<10) + "\r\n")
	done := make(chan error, 1)
	go func() {
		for {
			c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Write(line); err != nil {
				done <- err
				return
			}
			c.SetWriteDeadline(time.Time{})
			if err := c.Flush(); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("writing to a client that does not read: %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writes to a client that does not read blocked past their deadline")
	}
}
