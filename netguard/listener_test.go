//go:build linux

package netguard

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve runs a guarded listener on a loopback port that greets each
// connection with "hi\n" and holds it open until the client closes.
func serve(t *testing.T, opts Options) (*Listener, string, *logBuf) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	g := Guard(ln, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := g.Accept()
			if err != nil {
				return
			}
			go func() {
				c.Write([]byte("hi\n"))
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { g.Close(); <-done })
	return g, ln.Addr().String(), logs
}

func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c
}

func firstLine(t *testing.T, c net.Conn) string {
	t.Helper()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

func refusal(perIP bool, limit int) []byte {
	if perIP {
		return []byte("busy per-ip\n")
	}
	return []byte("busy\n")
}

func TestMaxConnsPerIP(t *testing.T) {
	g, addr, logs := serve(t, Options{Name: "t", MaxConnsPerIP: 2, Refusal: refusal})
	a, b := dialFrom(t, "127.0.0.2", addr), dialFrom(t, "127.0.0.2", addr)
	for _, c := range []net.Conn{a, b} {
		if got := firstLine(t, c); got != "hi" {
			t.Fatalf("admitted connection: %q", got)
		}
	}
	if got := firstLine(t, dialFrom(t, "127.0.0.2", addr)); got != "busy per-ip" {
		t.Fatalf("third connection from one address: %q, want the refusal", got)
	}
	// Another address has its own count.
	if got := firstLine(t, dialFrom(t, "127.0.0.3", addr)); got != "hi" {
		t.Fatalf("other address: %q", got)
	}
	if !strings.Contains(logs.String(), "max_connections_per_ip") {
		t.Fatalf("refusal not logged:\n%s", logs)
	}
	// Closing one gives its place back (once the server has seen it).
	a.Close()
	waitFor(t, func() bool { return g.Open() == 2 })
	if got := firstLine(t, dialFrom(t, "127.0.0.2", addr)); got != "hi" {
		t.Fatalf("after a close: %q", got)
	}
}

func TestLoopbackExempt(t *testing.T) {
	_, addr, _ := serve(t, Options{Name: "t", MaxConnsPerIP: 1, LoopbackExempt: true, Refusal: refusal})
	for range 3 {
		if got := firstLine(t, dialFrom(t, "127.0.0.2", addr)); got != "hi" {
			t.Fatalf("loopback client refused: %q", got)
		}
	}
}

func TestMaxConns(t *testing.T) {
	g, addr, _ := serve(t, Options{Name: "t", MaxConns: 2, Refusal: refusal})
	a := dialFrom(t, "127.0.0.2", addr)
	b := dialFrom(t, "127.0.0.3", addr)
	firstLine(t, a)
	firstLine(t, b)
	if got := firstLine(t, dialFrom(t, "127.0.0.4", addr)); got != "busy" {
		t.Fatalf("over MaxConns: %q", got)
	}
	b.Close()
	waitFor(t, func() bool { return g.Open() == 1 })
	if got := firstLine(t, dialFrom(t, "127.0.0.4", addr)); got != "hi" {
		t.Fatalf("after a close: %q", got)
	}
}

// TestAcceptSurvivesEMFILE runs this process out of descriptors while a
// client waits to be accepted: Accept logs, waits and returns the
// connection once a descriptor is free, instead of returning the error.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	g := Guard(ln, Options{Name: "t", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	defer g.Close()

	// A soft limit just above what is open, then every free descriptor
	// taken but one, which the client's socket takes.
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(len(ents) + 16)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var fillers []*os.File
	release := func() {
		for _, f := range fillers {
			f.Close()
		}
		fillers = nil
	}
	defer func() {
		release()
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}()
	// fill takes every free descriptor.
	fill := func() {
		t.Helper()
		for range 64 {
			f, err := os.Open(os.DevNull)
			if err != nil {
				if !errors.Is(err, syscall.EMFILE) {
					t.Fatal(err)
				}
				return
			}
			fillers = append(fillers, f)
		}
		t.Fatal("never ran out of descriptors")
	}
	// Connections of earlier tests are closed by their goroutines; let
	// them finish so that no descriptor comes free behind our back.
	time.Sleep(100 * time.Millisecond)
	fill()
	fillers[len(fillers)-1].Close()
	fillers = fillers[:len(fillers)-1]
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	fill() // anything freed meanwhile

	type result struct {
		c   net.Conn
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := g.Accept()
		got <- result{c, err}
	}()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "too many open files") })
	select {
	case r := <-got:
		t.Fatalf("Accept returned while out of descriptors: %v", r.err)
	default:
	}
	release()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("Accept after descriptors came back: %v", r.err)
		}
		r.c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return once descriptors came back")
	}
}

// TestCloseEndsAccept: Close ends an Accept, also one waiting out an
// error, with an error wrapping net.ErrClosed.
func TestCloseEndsAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := Guard(ln, Options{Name: "t"})
	errc := make(chan error, 1)
	go func() { _, err := g.Accept(); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	g.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

func TestRaiseFileLimit(t *testing.T) {
	n, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != lim.Max || n != uint64(lim.Cur) {
		t.Fatalf("after RaiseFileLimit: soft %d hard %d, returned %d", lim.Cur, lim.Max, n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConnKeepsSocket: a guarded connection still reaches its socket
// (imapsrv reads the TCP state of a searching client through it).
func TestConnKeepsSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := Guard(ln, Options{Name: "t", MaxConns: 1})
	defer g.Close()
	client := dialFrom(t, "127.0.0.2", ln.Addr().String())
	defer client.Close()
	c, err := g.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("%T hides the socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	if err := rc.Control(func(f uintptr) { fd = f }); err != nil || fd == 0 {
		t.Fatalf("Control: fd %d, %v", fd, err)
	}
}
