package main

import (
	"strings"
	"testing"
)

// TestUserQuota: `user quota` shows and sets an account's limits, locally
// and through a running server, and deliver exits 73 (EX_CANTCREAT) for a
// recipient over its quota, both ways; moving the limit back lets mail in.
func TestUserQuota(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	r := certmail(t, "", "user", "quota", "alice", "--data", dir).must(t, 0)
	if !strings.Contains(r.stdout, "messages  0 of no limit") {
		t.Errorf("quota of a new account:\n%s", r.stdout)
	}
	r = certmail(t, "", "user", "quota", "Alice", "--messages", "1", "--storage", "1MiB", "--data", dir).must(t, 0)
	if !strings.Contains(r.stdout, "storage   0 of 1MiB") || !strings.Contains(r.stdout, "messages  0 of 1") {
		t.Errorf("quota after setting it:\n%s", r.stdout)
	}
	certmail(t, "", "user", "quota", "alice", "--messages", "many", "--data", dir).must(t, exitUsage)
	certmail(t, "", "user", "quota", "nobody", "--data", dir).must(t, exitFailure)

	msg := "Subject: s\r\n\r\nbody\r\n"
	certmail(t, msg, "deliver", "--to", "alice", "--data", dir).must(t, 0)
	certmail(t, msg, "deliver", "--to", "alice", "--data", dir).must(t, exitCantCreat)
	srv := startServer(t, dir)
	certmail(t, msg, "deliver", "--to", "alice", "--data", dir).must(t, exitCantCreat)
	r = certmail(t, "", "user", "quota", "alice", "--messages", "default", "--data", dir).must(t, 0)
	if !strings.Contains(r.stdout, "messages  1 of no limit") {
		t.Errorf("quota through the server:\n%s", r.stdout)
	}
	certmail(t, msg, "deliver", "--to", "alice", "--data", dir).must(t, 0)
	srv.stop(t)

	r = certmail(t, "", "deliver", "--help").must(t, 0)
	if !strings.Contains(r.stdout, "73") || !strings.Contains(r.stdout, "EX_CANTCREAT") {
		t.Errorf("deliver --help does not name 73:\n%s", r.stdout)
	}
}
