package interop

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// certmailBin is the binary under test, built once in TestMain.
var certmailBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certmail-interop")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	certmailBin = filepath.Join(dir, "certmail")
	build := exec.Command("go", "build", "-o", certmailBin, "certmail/cmd/certmail")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building certmail:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool fails the test when a program it needs is missing: these
// tests must not pass silently on a machine without the real clients.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed; run `make test-deps` (or apt-get install it)", name)
	}
	return p
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// server is a running `certmail serve`.
type server struct {
	t        *testing.T
	data     string
	imap     string
	lmtp     string
	http     string
	cmd      *exec.Cmd
	mu       sync.Mutex
	logs     bytes.Buffer
	exited   chan struct{}
	extraArg []string
}

func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	s := &server{t: t, data: t.TempDir(), extraArg: extra}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start starts the server on free ports. A port found free can be taken
// by another process before the server binds it (the test binaries of
// other packages run at once): the server then exits at once with
// "address already in use", and start tries again on new ports.
func (s *server) start() {
	t := s.t
	t.Helper()
	for attempt := 1; ; attempt++ {
		if s.startOnce() {
			return
		}
		if attempt == 3 || !strings.Contains(s.logText(), "address already in use") {
			t.Fatalf("certmail serve exited early:\n%s", s.logText())
		}
		t.Logf("a port was taken before certmail bound it; new ports (attempt %d)", attempt+1)
	}
}

// startOnce starts the server and waits until it listens, or reports
// false if it exited first.
func (s *server) startOnce() bool {
	t := s.t
	t.Helper()
	s.imap, s.lmtp, s.http = freeAddr(t), freeAddr(t), freeAddr(t)
	args := append([]string{"serve", "--data", s.data, "--imap", s.imap, "--lmtp", s.lmtp, "--http", s.http}, s.extraArg...)
	s.cmd = exec.Command(certmailBin, args...)
	pr, pw := io.Pipe()
	s.cmd.Stdout = pw
	s.cmd.Stderr = pw
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting certmail serve: %v", err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.cmd.Wait()
		pw.Close()
		close(s.exited)
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
	}()
	return s.listening(s.imap) && s.listening(s.lmtp)
}

func (s *server) waitListening(addr string) {
	s.t.Helper()
	if !s.listening(addr) {
		s.t.Fatalf("certmail serve exited early:\n%s", s.logText())
	}
}

// listening waits until the server listens on addr (true) or exits
// (false); it fails the test if neither happens within 15 s.
func (s *server) listening(addr string) bool {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-s.exited:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.t.Fatalf("certmail serve did not listen on %s:\n%s", addr, s.logText())
	return false
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	if s.t.Failed() {
		s.t.Logf("server log:\n%s", s.logText())
	}
	s.cmd = nil
}

// run runs the certmail binary with args and stdin, failing on error.
func (s *server) run(stdin string, args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, certmailBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("certmail %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (s *server) addUser(name, password string) {
	s.t.Helper()
	s.run(password+"\n", "user", "add", name, "--password-stdin", "--data", s.data)
}

// deliverSwaks delivers a message over LMTP with swaks, as an MTA would.
func (s *server) deliverSwaks(to, subject, body string) {
	s.t.Helper()
	requireTool(s.t, "swaks")
	host, port, _ := net.SplitHostPort(s.lmtp)
	cmd := exec.Command("swaks", "--protocol", "LMTP", "--server", host, "--port", port,
		"--from", "sender@example.org", "--to", to,
		"--header", "Subject: "+subject, "--body", body, "--silent", "2")
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("swaks: %v\n%s", err, out)
	}
}

// runTool runs an external program with a timeout and returns its output.
func runTool(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }
