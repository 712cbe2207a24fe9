//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// liveServer is a running `certmail serve` with every listener on a free
// loopback port, started from a config file.
type liveServer struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   bytes.Buffer
	addrs map[string]string
	done  chan struct{}
}

func (s *liveServer) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *liveServer) addr(proto string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[proto]
}

func (s *liveServer) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// startLive writes cfg to a file and serves dataDir with it. nofile, if
// not zero, is the server's RLIMIT_NOFILE (soft and hard), set right
// after it starts.
func startLive(t *testing.T, dataDir, cfg string, nofile uint64, extra ...string) *liveServer {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), "certmail.toml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--config", cfgFile, "--data", dataDir}, extra...)
	cmd := exec.Command(binary, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if nofile > 0 {
		// Soft and hard: the server raises its soft limit to the hard
		// one at start, which is what a low limit must survive.
		lim := syscall.Rlimit{Cur: nofile, Max: nofile}
		if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(cmd.Process.Pid), syscall.RLIMIT_NOFILE,
			uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
			cmd.Process.Kill()
			t.Fatalf("prlimit: %v", e)
		}
	}
	s := &liveServer{cmd: cmd, addrs: map[string]string{}, done: make(chan struct{})}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			if m := listenRE.FindStringSubmatch(line); m != nil {
				s.addrs[m[1]] = m[2]
			}
			s.mu.Unlock()
			if strings.Contains(line, "certmail started") {
				once.Do(func() { close(started) })
			}
		}
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
	})
	select {
	case <-started:
	case <-s.done:
		t.Fatalf("serve exited early:\n%s", s.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not start:\n%s", s.logs())
	}
	return s
}

// dialFrom connects to addr from the loopback address src (all of
// 127.0.0.0/8 is local on Linux), so that one test can be many clients.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// expectLine reads one line from addr's greeting and checks its prefix.
func expectGreeting(t *testing.T, addr, want string, wait time.Duration) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(wait))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, want) {
		t.Fatalf("greeting from %s: %q, %v; want %q", addr, line, err, want)
	}
}

// lmtpDeliver sends one message to rcpt over LMTP and checks the 250.
func lmtpDeliver(t *testing.T, addr, rcpt, body string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	reply := func() string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("lmtp: %v", err)
			}
			if len(line) < 4 || line[3] != '-' {
				return line
			}
		}
	}
	if g := reply(); !strings.HasPrefix(g, "220") {
		t.Fatalf("lmtp greeting %q", g)
	}
	for _, step := range []struct{ cmd, want string }{
		{"LHLO test", "250"},
		{"MAIL FROM:<a@example.net>", "250"},
		{"RCPT TO:<" + rcpt + ">", "250"},
		{"DATA", "354"},
		{"Subject: t\r\n\r\n" + body + "\r\n.", "250"},
	} {
		fmt.Fprintf(c, "%s\r\n", step.cmd)
		if got := reply(); !strings.HasPrefix(got, step.want) {
			t.Fatalf("lmtp %q: %q", step.cmd, got)
		}
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestListenersSurviveDescriptorExhaustion runs the server under a low
// RLIMIT_NOFILE and holds more idle HTTP connections than it has
// descriptors. The server must not exit: IMAP, LMTP and HTTP serve
// again once the HTTP timeouts close the idle connections, every idle
// one is closed by the server, and one address gets no more than its cap.
func TestListenersSurviveDescriptorExhaustion(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	const (
		nofile = 96
		perIP  = 20
	)
	cfg := fmt.Sprintf(`
[listen]
imap = "127.0.0.1:0"
lmtp = "127.0.0.1:0"
http = "127.0.0.1:0"
[limits]
max_connections_per_ip = %d
loopback_exempt = false
[http]
read_header_timeout = "1500ms"
read_timeout = "3s"
write_timeout = "3s"
idle_timeout = "1500ms"
`, perIP)
	s := startLive(t, dir, cfg, nofile)
	imapAddr, lmtpAddr, httpAddr := s.addr("imap"), s.addr("lmtp"), s.addr("http")

	// One address gets its cap and no more: the next connection is
	// answered 503 and closed.
	var capped []net.Conn
	for range perIP {
		c, err := dialFrom("127.0.0.200", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		capped = append(capped, c)
	}
	over, err := dialFrom("127.0.0.200", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	over.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, _ := io.ReadAll(over); !bytes.HasPrefix(b, []byte("HTTP/1.1 503 ")) || !bytes.Contains(b, []byte("limit 20")) {
		t.Fatalf("connection %d from one address: %q, want 503 (limit %d)", perIP+1, b, perIP)
	}
	over.Close()
	for _, c := range capped {
		c.Close()
	}

	// Idle connections from many addresses, each under the cap, more in
	// all than the server has descriptors.
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for i := 0; len(idle) < 2*nofile; i++ {
		c, err := dialFrom(fmt.Sprintf("127.0.1.%d", 1+i/(perIP-1)), httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// The server ran out: its accept failed with EMFILE (else this test
	// proves nothing).
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.logs(), "too many open files") {
		if time.Now().After(deadline) || !s.alive() {
			t.Fatalf("the server never ran out of descriptors (alive %v):\n%s", s.alive(), s.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// While it is out, an IMAP client knocks: it is greeted once the idle
	// HTTP connections time out, and the server never exits.
	expectGreeting(t, imapAddr, "* OK", 20*time.Second)
	lmtpDeliver(t, lmtpAddr, "alice@example.org", "delivered after the descriptors ran out")
	if code, body := httpGet(t, "http://"+httpAddr+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %s", code, body)
	}

	// Every idle connection is closed by the server's timeouts (those
	// that waited in the backlog are accepted, then time out too).
	for i, c := range idle {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("idle connection %d not closed by the server: %v", i, err)
		}
	}
	if !s.alive() || strings.Contains(s.logs(), "listener failed") {
		t.Fatalf("the server stopped:\n%s", s.logs())
	}
	expectGreeting(t, imapAddr, "* OK", 10*time.Second)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-s.done
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, s.logs())
	}
	st := openStore(t, dir)
	if got := inbox(t, st, "alice"); len(got) != 1 || !bytes.Contains(got[0], []byte("after the descriptors ran out")) {
		t.Fatalf("alice's INBOX: %q", got)
	}
}

// TestMetricsOwnListener: /metrics is not on the API's listener, only on
// the metrics one, and per-account labels appear only when configured.
func TestMetricsOwnListener(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	base := `
[listen]
imap = ""
lmtp = "127.0.0.1:0"
http = "127.0.0.1:0"
metrics = "127.0.0.1:0"
`
	for _, tc := range []struct {
		name, cfg   string
		want, avoid string
	}{
		{"aggregate", base, "\ncertmail_unread_messages 1\n", `account="alice"`},
		{"per mailbox", base + "[metrics]\nper_mailbox = true\n", `certmail_unread_messages{account="alice",mailbox="INBOX"} 1`, "\ncertmail_unread_messages 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startLive(t, dir, tc.cfg, 0)
			if tc.name == "aggregate" {
				lmtpDeliver(t, s.addr("lmtp"), "alice@example.org", "unread")
			}
			if code, body := httpGet(t, "http://"+s.addr("http")+"/metrics"); code != http.StatusNotFound {
				t.Fatalf("/metrics on the API listener: %d\n%s", code, body)
			}
			code, body := httpGet(t, "http://"+s.addr("metrics")+"/metrics")
			if code != 200 || !strings.Contains(body, tc.want) || strings.Contains(body, tc.avoid) {
				t.Fatalf("metrics listener: %d, want %q and not %q:\n%s", code, tc.want, tc.avoid, body)
			}
			s.cmd.Process.Signal(syscall.SIGTERM)
			<-s.done
		})
	}
}
