package backup

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"certmail/mailbox"
)

// TestBackupArchiveChunksAndTruncation backs up a store larger than one
// chunk, restores it, and refuses a truncated archive and one that names
// a file outside the data directory.
func TestBackupArchiveChunksAndTruncation(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	so := mailbox.Options{Dir: t.TempDir(), Logger: logger, GCInterval: -1}
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
	os.WriteFile(filepath.Join(so.Dir, "gateway.key"), []byte("KEY"), 0o600)
	var buf bytes.Buffer
	res, err := Write(st, so.Dir, nil, &buf)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.StoreBytes < 2*storeChunk || len(res.Files) != 1 {
		t.Fatalf("result %+v", res)
	}
	archive := filepath.Join(t.TempDir(), "b.bak")
	os.WriteFile(archive, buf.Bytes(), 0o600)

	rso := so
	rso.Dir = filepath.Join(t.TempDir(), "r")
	_, tr, err := Restore(rso, archive, nil)
	if err != nil || tr.Chunks < 3 {
		t.Fatalf("restore: %+v %v", tr, err)
	}
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
	rso.Dir = filepath.Join(t.TempDir(), "r2")
	if _, _, err := Restore(rso, cut, nil); err == nil {
		t.Fatal("a truncated backup was restored")
	}
	if ents, _ := os.ReadDir(rso.Dir); len(ents) != 0 {
		t.Fatalf("a failed restore left %d files", len(ents))
	}

	// A file name leaving the directory: refused.
	var evil bytes.Buffer
	tw := tar.NewWriter(&evil)
	tarAdd(tw, manifestName, []byte(`{"format":1}`))
	tarAdd(tw, filesDir+"../escape", []byte("x"))
	tw.Close()
	evilFile := filepath.Join(t.TempDir(), "evil.bak")
	os.WriteFile(evilFile, evil.Bytes(), 0o600)
	rso.Dir = filepath.Join(t.TempDir(), "r3")
	if _, _, err := Restore(rso, evilFile, nil); err == nil || !strings.Contains(err.Error(), "refusing file name") {
		t.Fatalf("escaping name: %v", err)
	}
}
