package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"certmail/config"
	"certmail/kv/pgkv/pgtest"
)

// TestServeStopsWithDatabaseGone: a node whose PostgreSQL server is gone
// (stopped, not coming back) stops cleanly on SIGTERM, with an IMAP
// session idling and an LMTP session open: it exits 0 within its
// shutdown budget (shutdown_timeout), rather than hanging on the
// database or failing.
func TestServeStopsWithDatabaseGone(t *testing.T) {
	c := pgtest.Start(t) // a cluster of its own: this test stops it
	dsn := c.DB(t)
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--store", dsn, "--data", dir).must(t, 0)
	srv := startServer(t, dir, "--store", dsn, "--node", "a", "--imap", "127.0.0.1:0")

	// An IMAP session in IDLE and an LMTP session, open across the stop.
	conn, err := net.DialTimeout("tcp", srv.imap, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(conn)
	br.ReadString('\n')
	for _, cmd := range []string{"a LOGIN alice pw", "b SELECT INBOX", "c IDLE"} {
		conn.Write([]byte(cmd + "\r\n"))
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if strings.HasPrefix(l, cmd[:2]) || strings.HasPrefix(l, "+") {
				if strings.HasPrefix(l, cmd[:2]+"NO") || strings.HasPrefix(l, cmd[:2]+"BAD") {
					t.Fatalf("%s: %s", cmd, l)
				}
				break
			}
		}
	}
	lc, err := net.DialTimeout("tcp", srv.lmtp, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	lbr := bufio.NewReader(lc)
	lbr.ReadString('\n')
	lc.Write([]byte("LHLO test\r\n"))

	c.Down(t)
	time.Sleep(1500 * time.Millisecond) // the node notices (its LISTEN connection breaks)
	start := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	budget := config.DefaultShutdownTimeout + 5*time.Second
	select {
	case <-srv.done:
	case <-time.After(budget):
		t.Fatalf("serve did not stop within %v of SIGTERM with the database gone:\n%s", budget, srv.logs())
	}
	d := time.Since(start)
	code := srv.cmd.ProcessState.ExitCode()
	t.Logf("serve stopped %v after SIGTERM, exit %d", d, code)
	if code != 0 {
		t.Errorf("serve exited %d with the database gone; want 0:\n%s", code, srv.logs())
	}
	if d > config.DefaultShutdownTimeout {
		t.Errorf("serve took %v to stop, more than its shutdown budget %v:\n%s", d, config.DefaultShutdownTimeout, srv.logs())
	}
}

// clusterProcs returns the PIDs of the cluster's server processes: the
// postmaster and its children.
func clusterProcs(t *testing.T, c *pgtest.Cluster) []int {
	t.Helper()
	pids := []int{c.Pid()}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so from the
		// last ')'.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(c.Pid()) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestServeStopsWithDatabaseHung: the database stops answering without
// closing its connections (its processes frozen: a host that hangs, a
// network that drops packets), with a delivery waiting on it. SIGTERM
// still stops the node within its shutdown budget, exit 0 or a clear
// error, and the delivery is not acknowledged.
func TestServeStopsWithDatabaseHung(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.DB(t)
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--store", dsn, "--data", dir).must(t, 0)
	srv := startServer(t, dir, "--store", dsn, "--node", "a", "--imap", "127.0.0.1:0")
	if err := lmtpTry(srv.lmtp, "alice@example.org", "Subject: before\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}

	pids := clusterProcs(t, c)
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGSTOP)
	}
	t.Cleanup(func() {
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGCONT)
		}
	})
	answer := make(chan error, 1)
	go func() { answer <- lmtpTry(srv.lmtp, "alice@example.org", "Subject: hung\r\n\r\nx\r\n") }()
	time.Sleep(time.Second) // the delivery waits on the database

	start := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	budget := config.DefaultShutdownTimeout + 5*time.Second
	select {
	case <-srv.done:
	case <-time.After(budget):
		// Its goroutines, for the failure message (Go prints them on
		// SIGQUIT).
		srv.cmd.Process.Signal(syscall.SIGQUIT)
		<-srv.done
		t.Fatalf("serve did not stop within %v of SIGTERM with the database hung:\n%s", budget, srv.logs())
	}
	d := time.Since(start)
	code := srv.cmd.ProcessState.ExitCode()
	logs := srv.logs()
	t.Logf("serve stopped %v after SIGTERM, exit %d; its last lines:\n%s", d, code, lastLines(logs, 4))
	if d > config.DefaultShutdownTimeout+2*time.Second {
		t.Errorf("serve took %v to stop, more than its shutdown budget %v:\n%s", d, config.DefaultShutdownTimeout, logs)
	}
	if code != 0 && !strings.Contains(logs, "level=ERROR") {
		t.Errorf("serve exited %d without saying why:\n%s", code, logs)
	}
	select {
	case err := <-answer:
		if err == nil {
			t.Errorf("the delivery waiting on a hung database was acknowledged")
		}
		t.Logf("the delivery: %v", err)
	case <-time.After(5 * time.Second):
		t.Errorf("the LMTP client got no answer nor a closed connection")
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
