package interop

import (
	"bufio"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPythonImaplib runs a scripted session with Python's imaplib: login,
// list, status, select, fetch, store, search, copy, append, expunge and an
// IDLE spoken by hand, during which the test delivers a message over LMTP.
func TestPythonImaplib(t *testing.T) {
	py := requireTool(t, "python3")
	s := startServer(t)
	s.addUser("alice", "secret")
	s.deliverSwaks("alice@example.org", "first", "body of first")
	s.deliverSwaks("alice@example.org", "second", "body of second")

	host, port, _ := net.SplitHostPort(s.imap)
	cmd := exec.Command(py, "testdata/imaplib_session.py", host, port, "alice", "secret")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			out.WriteString(line + "\n")
			if line == "IDLING" {
				s.deliverSwaks("alice@example.org", "third", "delivered during IDLE")
			}
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "PASS") {
			t.Fatalf("imaplib session failed: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("imaplib session timed out\nstdout:\n%s\nstderr:\n%s", out.String(), stderr.String())
	}
}
