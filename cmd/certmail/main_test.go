package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"certmail/kv/pgkv/pgtest"
	"certmail/mailbox"
)

// pg is the private PostgreSQL cluster (started by the first test that
// asks for a database): `certmail migrate` is tested against it.
var pg pgtest.Shared

// binary is the certmail binary built once for every test here: the
// tests run it as an operator and an MTA would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certmail-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "certmail")
	goCmd := "go"
	if _, err := exec.LookPath(goCmd); err != nil {
		goCmd = "/usr/local/go/bin/go"
	}
	out, err := exec.Command(goCmd, "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building certmail: %v\n%s", err, out)
		os.Exit(1)
	}
	code := pg.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// certmail runs the binary with stdin and returns its exit code and
// output.
func certmail(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running certmail %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

func (r result) must(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// server is a running `certmail serve`.
type server struct {
	cmd  *exec.Cmd
	lmtp string
	http string
	imap string // only when started with --imap
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

func (s *server) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

var listenRE = regexp.MustCompile(`msg=listening proto=(\w+) addr=(\S+)`)

// startServer runs serve on free loopback ports (port 0; the bound
// addresses come from its log) with IMAP off, so these tests do not
// depend on the IMAP server; extra flags come last (--imap 127.0.0.1:0
// turns it on).
func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data", dataDir, "--imap", "",
		"--lmtp", "127.0.0.1:0", "--http", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(binary, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			if m := listenRE.FindStringSubmatch(line); m != nil {
				switch m[1] {
				case "lmtp":
					s.lmtp = m[2]
				case "http":
					s.http = m[2]
				case "imap":
					s.imap = m[2]
				}
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

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop:\n%s", s.logs())
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, s.logs())
	}
}

func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
}

// openStore opens the data directory in this process (no server may run).
func openStore(t *testing.T, dir string) *mailbox.Store {
	t.Helper()
	st, err := mailbox.Open(mailbox.Options{Dir: dir, GCInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func inbox(t *testing.T, st *mailbox.Store, acct string) [][]byte {
	t.Helper()
	mb, err := st.Mailbox(acct, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(acct, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		raw, err := st.Raw(m.Blob)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

func TestUsage(t *testing.T) {
	certmail(t, "").must(t, exitUsage)
	if r := certmail(t, "", "frobnicate").must(t, exitUsage); !strings.Contains(r.stderr, "unknown command") {
		t.Fatal(r.stderr)
	}
	if r := certmail(t, "", "help").must(t, 0); !strings.Contains(r.stdout, "deliver --to USER") {
		t.Fatal(r.stdout)
	}
	if r := certmail(t, "", "version").must(t, 0); !strings.HasPrefix(r.stdout, "certmail ") {
		t.Fatal(r.stdout)
	}
	certmail(t, "", "user").must(t, exitUsage)
	certmail(t, "", "user", "add").must(t, exitUsage)
	certmail(t, "", "user", "frob", "x").must(t, exitUsage)
	certmail(t, "", "deliver").must(t, exitUsage)
	certmail(t, "", "serve", "--bogus").must(t, exitUsage)
	certmail(t, "", "config").must(t, exitUsage)
}

func TestConfigCheck(t *testing.T) {
	certmail(t, "", "config", "check", filepath.Join("..", "..", "certmail.example.toml")).must(t, 0)
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("data = \"x\"\n[listen]\nimapp = \"127.0.0.1:1\"\n"), 0o644)
	r := certmail(t, "", "config", "check", bad).must(t, exitFailure)
	if !strings.Contains(r.stderr, "bad.toml:3: listen.imapp: unknown key") {
		t.Fatalf("stderr: %s", r.stderr)
	}
	// serve refuses it too, before touching anything.
	r = certmail(t, "", "serve", "--config", bad, "--data", t.TempDir()).must(t, exitFailure)
	if !strings.Contains(r.stderr, "unknown key") {
		t.Fatalf("stderr: %s", r.stderr)
	}
}

func TestUserCommandsWithoutServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	// Flags after the positional argument.
	certmail(t, "s3cret\n", "user", "add", "Alice", "--password-stdin", "--data", dir).must(t, 0)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v %v", fi, err)
	}
	certmail(t, "pw\n", "user", "add", "--data", dir, "--password-stdin", "bob").must(t, 0)
	if r := certmail(t, "x\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, exitFailure); !strings.Contains(r.stderr, "already exists") {
		t.Fatal(r.stderr)
	}
	// No terminal and no --password-stdin: refuse rather than hang.
	if r := certmail(t, "pw\n", "user", "add", "carol", "--data", dir).must(t, exitFailure); !strings.Contains(r.stderr, "--password-stdin") {
		t.Fatal(r.stderr)
	}
	if r := certmail(t, "", "user", "list", "--data", dir).must(t, 0); r.stdout != "alice\nbob\n" {
		t.Fatalf("list: %q", r.stdout)
	}
	certmail(t, "new\n", "user", "passwd", "alice", "--password-stdin", "--data", dir).must(t, 0)
	certmail(t, "", "user", "del", "bob", "--data", dir).must(t, 0)
	certmail(t, "", "user", "del", "bob", "--data", dir).must(t, exitFailure)
	if r := certmail(t, "", "user", "list", "--data", filepath.Join(t.TempDir(), "none")).must(t, exitFailure); !strings.Contains(r.stderr, "no certmail store in ") {
		t.Fatal(r.stderr)
	}

	st := openStore(t, dir)
	if _, err := st.Authenticate("alice", "new"); err != nil {
		t.Fatalf("alice's new password: %v", err)
	}
	if ok, _ := st.AccountExists("bob"); ok {
		t.Fatal("bob still exists")
	}
	if _, err := st.Mailbox("alice", "Acknowledge"); err != nil {
		t.Fatal(err)
	}
	// With the directory held by a process that has no admin socket, the
	// commands say so instead of hanging or corrupting anything.
	r := certmail(t, "pw\n", "user", "add", "dave", "--password-stdin", "--data", dir).must(t, exitFailure)
	if !strings.Contains(r.stderr, "locked") {
		t.Fatalf("stderr: %s", r.stderr)
	}
	r = certmail(t, "Subject: x\r\n\r\nx\r\n", "deliver", "--to", "alice", "--data", dir).must(t, exitTempFail)
	if !strings.Contains(r.stderr, "locked") {
		t.Fatalf("stderr: %s", r.stderr)
	}
}

func TestUserCommandsWithServer(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	certmail(t, "s3cret\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	certmail(t, "pw\n", "user", "add", "bob", "--password-stdin", "--data", dir).must(t, 0)
	certmail(t, "x\n", "user", "add", "ALICE", "--password-stdin", "--data", dir).must(t, exitFailure)
	if r := certmail(t, "", "user", "list", "--data", dir).must(t, 0); r.stdout != "alice\nbob\n" {
		t.Fatalf("list: %q", r.stdout)
	}
	certmail(t, "new\n", "user", "passwd", "alice", "--password-stdin", "--data", dir).must(t, 0)
	certmail(t, "", "user", "del", "bob", "--data", dir).must(t, 0)
	if !strings.Contains(srv.logs(), "admin: user added") {
		t.Fatalf("the commands did not go through the server:\n%s", srv.logs())
	}
	srv.stop(t)
	if _, err := os.Stat(filepath.Join(dir, "admin.sock")); !os.IsNotExist(err) {
		t.Fatalf("admin socket left behind: %v", err)
	}
	if !strings.Contains(srv.logs(), "store closed") {
		t.Fatalf("no clean shutdown:\n%s", srv.logs())
	}
	st := openStore(t, dir)
	if _, err := st.Authenticate("alice", "new"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.AccountExists("bob"); ok {
		t.Fatal("bob still exists")
	}
}

func TestDeliverCommand(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	msg1 := "From: a@example.net\nSubject: offline\n\nLF-only lines, stored as given\n"
	msg2 := "From: a@example.net\r\nSubject: online\r\n\r\nvia the socket \xff\r\n"
	msg3 := "Subject: archived\r\n\r\nx\r\n"

	// No server: straight into the store.
	certmail(t, msg1, "deliver", "--to", "Alice", "--data", dir).must(t, 0)
	certmail(t, msg1, "deliver", "--to", "nobody", "--data", dir).must(t, exitNoUser)

	srv := startServer(t, dir)
	certmail(t, msg2, "deliver", "--to", "alice@example.org", "--data", dir).must(t, 0)
	certmail(t, msg3, "deliver", "--to", "alice", "--mailbox", "Archive", "--data", dir).must(t, 0)
	certmail(t, msg2, "deliver", "--data", dir, "--to", "nobody").must(t, exitNoUser)
	if !strings.Contains(srv.logs(), "msg=delivered rcpt=alice@example.org") {
		t.Fatalf("deliver did not go through the server:\n%s", srv.logs())
	}
	srv.stop(t)

	st := openStore(t, dir)
	got := inbox(t, st, "alice")
	if len(got) != 2 || string(got[0]) != msg1 || string(got[1]) != msg2 {
		t.Fatalf("INBOX: %q", got)
	}
	if _, status, err := st.Status("alice", "Archive"); err != nil || status.Messages != 1 {
		t.Fatalf("Archive: %+v %v", status, err)
	}
}

func TestDeliverTooLarge(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(cfg, []byte("[limits]\nmax_message_size = 100\n"), 0o644)
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	certmail(t, strings.Repeat("x", 101), "deliver", "--to", "alice", "--data", dir, "--config", cfg).must(t, exitDataErr)
	certmail(t, strings.Repeat("x", 100), "deliver", "--to", "alice", "--data", dir, "--config", cfg).must(t, 0)
}

func TestHealthz(t *testing.T) {
	srv := startServer(t, t.TempDir())
	conn, err := net.Dial("tcp", srv.http)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.0\r\n\r\n")
	b, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(b), "HTTP/1.0 200") || !strings.HasSuffix(string(b), "\r\n\r\nok") {
		t.Fatalf("healthz: %q", b)
	}
	srv.stop(t)
}

// A second server on the same data directory refuses to start and says
// why; the first one keeps running.
func TestServeSecondInstanceRefused(t *testing.T) {
	dir := t.TempDir()
	startServer(t, dir)
	r := certmail(t, "", "serve", "--data", dir, "--imap", "", "--lmtp", "127.0.0.1:0", "--http", "")
	if r.code == 0 || !strings.Contains(r.stderr, "in use by another process") {
		t.Fatalf("second serve: %d %s", r.code, r.stderr)
	}
}
