//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSignPassword: sign logs in to an existing account, so it asks for
// the password once (it used to ask "Again:" as if creating one), and
// --password-stdin works without --yes: the password is stdin's first
// line, the answers the following ones.
func TestSignPassword(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	key := filepath.Join(t.TempDir(), "alice.pem")
	certmail(t, "", "keygen", "--out", key).must(t, 0)
	certmail(t, "", "key", "register", "--user", "alice", "--pubkey", key+".pub", "--data", dir).must(t, 0)
	srv := startServer(t, dir, "--imap", "127.0.0.1:0")
	for range 3 {
		m := "From: clerk@court.example\r\nSubject: item\r\nCertified-Delivery: deadline=72h\r\n\r\nbody\r\n"
		if err := lmtpSend(t, srv.lmtp, "alice@example.org", m); err != nil {
			t.Fatal(err)
		}
	}
	base := []string{"sign", "--imap", srv.imap, "--user", "alice", "--key", key, "--all"}

	// --password-stdin without --yes: the first item is signed, the
	// second declined, the third finds no answer and is skipped.
	r := certmail(t, "alice-pw\ny\nn\n", append(base, "--password-stdin")...)
	if r.code != exitOK || !strings.Contains(r.stdout, "1 of 3 stub(s) signed") || !strings.Contains(r.stderr, "--yes signs without asking") {
		t.Fatalf("--password-stdin without --yes: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// On a terminal: one prompt, and the password typed once logs in.
	ptm, pts := openPTY(t)
	cmd := exec.Command(binary, append(base, "--yes")...)
	cmd.Stdin = pts
	var mu sync.Mutex
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return errb.Write(p)
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	stderr := func() string { mu.Lock(); defer mu.Unlock(); return errb.String() }
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr(), "IMAP password for alice: ") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no password prompt; stderr: %s", stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := ptm.Write([]byte("alice-pw\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sign on a terminal: %v\nstdout: %s\nstderr: %s", err, out.String(), stderr())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("sign still waiting after the password was typed once; stderr: %q", stderr())
	}
	if strings.Contains(stderr(), "Again") || !strings.Contains(out.String(), "2 of 2 stub(s) signed") {
		t.Fatalf("stdout: %s\nstderr: %q", out.String(), stderr())
	}
	srv.stop(t)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// openPTY opens a pseudo-terminal pair (pty(7)): the test writes to the
// master what a user would type; the command reads the slave as its
// terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("naming the pseudo-terminal: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pseudo-terminal's slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}
