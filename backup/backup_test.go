package backup

import (
	"archive/tar"
	"bytes"
	"context"
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
	if res.StoreBytes < 2*storeChunk || len(res.Files) != 1 || res.Pairs == 0 {
		t.Fatalf("result %+v", res)
	}
	// The store is in the engine-neutral stream (format 2).
	if !bytes.Contains(buf.Bytes()[:64<<10], []byte(`"format": 2`)) || !bytes.Contains(buf.Bytes()[:64<<10], []byte("certmail-kv 1\n")) {
		t.Fatal("the archive does not hold format 2's stream")
	}
	archive := filepath.Join(t.TempDir(), "b.bak")
	os.WriteFile(archive, buf.Bytes(), 0o600)

	rso := so
	rso.Dir = filepath.Join(t.TempDir(), "r")
	rr, err := Restore(context.Background(), rso, archive, RestoreOptions{})
	if err != nil || rr.Trailer.Chunks < 3 || rr.Trailer.Pairs != res.Pairs {
		t.Fatalf("restore: %+v %v", rr, err)
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
	if _, err := Restore(context.Background(), rso, cut, RestoreOptions{}); err == nil {
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
	if _, err := Restore(context.Background(), rso, evilFile, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "refusing file name") {
		t.Fatalf("escaping name: %v", err)
	}
}

// TestRestoreFormat1 restores backups written by certmail before backups
// held the engine-neutral stream (format 1: Badger's own stream). The
// fixtures were written by backup.Write at commit b66df56 from a store
// with alice (password "alice password"), two messages in her INBOX (the
// second \Seen) and a gateway.key reading "GATEWAY KEY";
// v1-encrypted.bak is the same store encrypted with 32 bytes of 0x42.
func TestRestoreFormat1(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	for _, c := range []struct {
		file string
		key  []byte
	}{{"v1-plain.bak", nil}, {"v1-encrypted.bak", key}} {
		t.Run(c.file, func(t *testing.T) {
			so := mailbox.Options{Dir: filepath.Join(t.TempDir(), "r"), EncryptionKey: c.key, Logger: quiet, GCInterval: -1}
			rr, err := Restore(context.Background(), so, filepath.Join("testdata", c.file), RestoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			man, tr := rr.Manifest, rr.Trailer
			if man.Format != formatBadger || tr.Version == 0 || tr.Pairs != 0 {
				t.Fatalf("manifest %+v, trailer %+v", man, tr)
			}
			if data, err := os.ReadFile(filepath.Join(so.Dir, "gateway.key")); string(data) != "GATEWAY KEY" {
				t.Fatalf("gateway.key: %q %v", data, err)
			}
			st, err := mailbox.Open(so)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Authenticate("alice", "alice password"); err != nil {
				t.Fatal(err)
			}
			bodies, flags := inboxes(t, st)
			if len(bodies["alice"]) != 2 || !bytes.Contains(bodies["alice"][1], []byte("second message")) ||
				!strings.Contains(flags["alice"][1], `\Seen`) || strings.Contains(flags["alice"][0], `\Seen`) {
				t.Fatalf("restored %q, flags %q", bodies, flags)
			}
		})
	}
	// Without the key the encrypted one is refused, and the directory
	// left empty.
	so := mailbox.Options{Dir: filepath.Join(t.TempDir(), "nokey"), Logger: quiet, GCInterval: -1}
	if _, err := Restore(context.Background(), so, filepath.Join("testdata", "v1-encrypted.bak"), RestoreOptions{}); err == nil {
		t.Fatal("an encrypted backup restored without its key")
	}
	if ents, _ := os.ReadDir(so.Dir); len(ents) != 0 {
		t.Fatalf("a failed restore left %d files", len(ents))
	}
}
