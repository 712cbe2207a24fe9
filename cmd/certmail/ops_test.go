package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"certmail/config"
	"certmail/mailbox"
)

// TestBackupArchiveChunksAndTruncation backs up a store larger than one
// chunk, restores it, and refuses a truncated archive and one that names
// a file outside the data directory.
func TestBackupArchiveChunksAndTruncation(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.Data = t.TempDir()
	so, _ := storeOptions(cfg, logger)
	so.GCInterval = -1
	st, err := mailbox.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount("big", "pw", mailbox.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 1<<20)
	for i := 0; i < 10; i++ { // 10 MiB of incompressible mail: three chunks
		rand.Read(body)
		raw := fmt.Appendf(nil, "Subject: %d\r\n\r\n%x\r\n", i, body[:600<<10])
		if err := st.Update(func(tx *mailbox.Tx) error {
			_, err := tx.Append("big", "INBOX", raw, mailbox.AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(cfg.Data, "gateway.key"), []byte("KEY"), 0o600)
	var buf bytes.Buffer
	res, err := writeBackupArchive(st, cfg, &buf)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.StoreBytes < 2*backupStoreChunk || len(res.Files) != 1 {
		t.Fatalf("result %+v", res)
	}
	archive := filepath.Join(t.TempDir(), "b.bak")
	os.WriteFile(archive, buf.Bytes(), 0o600)

	rcfg := *cfg
	rcfg.Data = filepath.Join(t.TempDir(), "r")
	_, tr, err := restoreBackup(&rcfg, archive, logger)
	if err != nil || tr.Chunks < 3 {
		t.Fatalf("restore: %+v %v", tr, err)
	}
	rso, _ := storeOptions(&rcfg, logger)
	rst, err := mailbox.Open(rso)
	if err != nil {
		t.Fatal(err)
	}
	inbox, _ := rst.Mailbox("big", "INBOX")
	msgs, _ := rst.Messages("big", inbox.ID)
	rst.Close()
	if len(msgs) != 10 {
		t.Fatalf("restored %d messages", len(msgs))
	}

	// Cut before the trailer: refused.
	cut := filepath.Join(t.TempDir(), "cut.bak")
	os.WriteFile(cut, buf.Bytes()[:buf.Len()-3000], 0o600)
	rcfg.Data = filepath.Join(t.TempDir(), "r2")
	if _, _, err := restoreBackup(&rcfg, cut, logger); err == nil {
		t.Fatal("a truncated backup was restored")
	}
	if ents, _ := os.ReadDir(rcfg.Data); len(ents) != 0 {
		t.Fatalf("a failed restore left %d files", len(ents))
	}

	// A file name leaving the directory: refused.
	var evil bytes.Buffer
	tw := tar.NewWriter(&evil)
	tarAdd(tw, backupManifestName, []byte(`{"format":1}`))
	tarAdd(tw, backupFilesDir+"../escape", []byte("x"))
	tw.Close()
	evilFile := filepath.Join(t.TempDir(), "evil.bak")
	os.WriteFile(evilFile, evil.Bytes(), 0o600)
	rcfg.Data = filepath.Join(t.TempDir(), "r3")
	if _, _, err := restoreBackup(&rcfg, evilFile, logger); err == nil || !strings.Contains(err.Error(), "refusing file name") {
		t.Fatalf("escaping name: %v", err)
	}
}

// TestBackupRestoreSummary: backup and restore, run away from a terminal
// (as from cron or a pipe), draw no bar (no \r, no escape codes) and end
// with one line in human units: size, time, rate, store version and size.
func TestBackupRestoreSummary(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	for i := range 3 {
		certmail(t, fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", 100<<10)), "deliver", "--to", "alice", "--data", dir).must(t, 0)
	}
	bak := filepath.Join(t.TempDir(), "b.bak")
	r := certmail(t, "", "backup", "--out", bak, "--data", dir).must(t, 0)
	units := `\d+(\.\d)? (B|KiB|MiB)`
	if !regexp.MustCompile(`^wrote ` + regexp.QuoteMeta(bak) + ` \(` + units + `\) in [0-9.]+m?s, ` + units + `/s: store at version \d+ \(` + units + `\), files \n?`).MatchString(r.stdout) {
		t.Errorf("backup summary: %q", r.stdout)
	}
	restored := filepath.Join(t.TempDir(), "r")
	r2 := certmail(t, "", "restore", bak, "--data", restored).must(t, 0)
	if !regexp.MustCompile(`^restored ` + regexp.QuoteMeta(bak) + ` \(` + units + `\) into ` + regexp.QuoteMeta(restored) + ` in [0-9.]+m?s, ` + units + `/s: store at version \d+ \(` + units + `\)`).MatchString(r2.stdout) {
		t.Errorf("restore summary: %q", r2.stdout)
	}
	for _, out := range []string{r.stdout, r.stderr, r2.stdout, r2.stderr} {
		if strings.ContainsAny(out, "\r\x1b") {
			t.Errorf("terminal codes away from a terminal: %q", out)
		}
	}
	if r := certmail(t, "", "user", "list", "--data", restored).must(t, 0); r.stdout != "alice\n" {
		t.Errorf("restored accounts: %q", r.stdout)
	}
}
