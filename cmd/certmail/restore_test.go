package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"certmail/kv"
	"certmail/kv/keyspace"
	"certmail/kv/pgkv"
	"certmail/mailbox"
)

// TestRestoreCommandIntoPostgres: `certmail restore` into PostgreSQL is
// all or nothing, and says what happened. A truncated backup: exit 1,
// "nothing was restored", the database and the data directory empty. A
// database holding part of an unfinished restore (its mark, as a killed
// restore leaves it): refused, naming --discard-incomplete, and no
// command opens the store; with --discard-incomplete the restore runs,
// and says that every mailbox has a new UIDVALIDITY.
func TestRestoreCommandIntoPostgres(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	for i := range 3 {
		certmail(t, fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", 100<<10)), "deliver", "--to", "alice", "--data", dir).must(t, 0)
	}
	bak := filepath.Join(t.TempDir(), "b.bak")
	certmail(t, "", "backup", "--out", bak, "--data", dir).must(t, 0)
	data, err := os.ReadFile(bak)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.bak")
	os.WriteFile(cut, data[:len(data)*2/3], 0o600)

	dsn := pg.DB(t)
	files := filepath.Join(t.TempDir(), "files")
	r := certmail(t, "", "restore", cut, "--store", dsn, "--data", files).must(t, exitFailure)
	if !strings.Contains(r.stderr, "nothing was restored") {
		t.Errorf("a truncated restore says: %s", r.stderr)
	}
	e, err := pgkv.Open(context.Background(), dsn, pgkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if empty, err := kv.IsEmpty(e); err != nil || !empty {
		t.Fatalf("the database after a truncated restore: empty %v, %v", empty, err)
	}
	if ents, _ := os.ReadDir(files); len(ents) != 0 {
		t.Fatalf("the data directory after a truncated restore: %d files", len(ents))
	}

	// What a restore killed half way leaves.
	if err := mailbox.BeginLoad(e, mailbox.NewLoadMark("restore", "killed.bak"), false); err != nil {
		t.Fatal(err)
	}
	if err := kv.Update(e, func(tx kv.Txn) error { return tx.Set([]byte(keyspace.Account+"alice"), []byte("{}")) }); err != nil {
		t.Fatal(err)
	}
	r = certmail(t, "", "restore", bak, "--store", dsn, "--data", files).must(t, exitFailure)
	if !strings.Contains(r.stderr, "killed.bak") || !strings.Contains(r.stderr, "again with --discard-incomplete") {
		t.Errorf("a restore over an unfinished one says: %s", r.stderr)
	}
	if r := certmail(t, "", "user", "list", "--store", dsn, "--data", files).must(t, exitFailure); !strings.Contains(r.stderr, "did not finish") {
		t.Errorf("user list on an unfinished restore: %s", r.stderr)
	}
	r = certmail(t, "", "restore", bak, "--store", dsn, "--data", files, "--discard-incomplete").must(t, 0)
	if !regexp.MustCompile(`(?m)^new UIDVALIDITY for each of the \d+ mailboxes \(\d+ to \d+\): IMAP clients drop what they cached`).MatchString(r.stdout) {
		t.Errorf("restore output: %s", r.stdout)
	}
	if r := certmail(t, "", "user", "list", "--store", dsn, "--data", files).must(t, 0); r.stdout != "alice\n" {
		t.Errorf("restored accounts: %q", r.stdout)
	}
}

// TestRestoreCommandInterrupted: Ctrl-C (SIGINT) once a restore into
// PostgreSQL has committed part of a 32 MiB backup: the command stops,
// deletes what it wrote, says so and exits 1; the database is empty.
func TestRestoreCommandInterrupted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	st, err := mailbox.Open(mailbox.Options{Dir: dir, GCInterval: -1, Brief: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount("alice", "pw", mailbox.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 512<<10)
	for i := range 32 {
		rand.Read(body)
		raw := fmt.Appendf(nil, "Subject: %d\r\n\r\n%x\r\n", i, body) // 1 MiB
		if err := st.Update(func(tx *mailbox.Tx) error {
			_, err := tx.Append("alice", "INBOX", raw, mailbox.AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	bak := filepath.Join(t.TempDir(), "b.bak")
	certmail(t, "", "backup", "--out", bak, "--data", dir).must(t, 0)

	dsn := pg.DB(t)
	e, err := pgkv.Open(context.Background(), dsn, pgkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cmd := exec.Command(binary, "restore", bak, "--store", dsn, "--data", filepath.Join(t.TempDir(), "files"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Wait for a batch past the mark to be committed, then interrupt.
	deadline := time.Now().Add(time.Minute)
	for {
		n := 0
		if err := kv.View(e, func(tx kv.Txn) error {
			n = 0
			return tx.Scan(kv.Range{KeysOnly: true, Limit: 3}, func(k, _ []byte) error { n++; return nil })
		}); err != nil {
			t.Fatal(err)
		}
		if n >= 3 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the restore ended before it could be interrupted: %v\n%s%s", err, stdout.String(), stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no record committed in a minute")
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := <-exited; !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
		t.Fatalf("an interrupted restore: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped") || !strings.Contains(stderr.String(), "nothing was restored") {
		t.Errorf("an interrupted restore says: %s", stderr.String())
	}
	if empty, err := kv.IsEmpty(e); err != nil || !empty {
		t.Fatalf("the database after an interrupted restore: empty %v, %v", empty, err)
	}
}
