package backup

import (
	"bytes"
	"crypto/rand"
	"io"
	"strings"
	"testing"
)

func TestBackupEncryption(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	for _, size := range []int{0, 1, backupChunk - 1, backupChunk, 3*backupChunk + 17} {
		plain := make([]byte, size)
		rand.Read(plain)
		var enc bytes.Buffer
		w, err := newBackupWriter(&enc, key)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain[:size/2])
		w.Write(plain[size/2:])
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if size > 16 && bytes.Contains(enc.Bytes(), plain[:16]) {
			t.Fatal("plaintext in the output")
		}
		r, err := newBackupReader(bytes.NewReader(enc.Bytes()), key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) || r.Close() != nil {
			t.Fatalf("size %d: round trip: %v", size, err)
		}
		// Truncated at a chunk boundary: refused, not a short restore.
		if size >= backupChunk {
			cut := len(backupMagic) + 32 + 4 + backupChunk + 16
			r, _ := newBackupReader(bytes.NewReader(enc.Bytes()[:cut]), key)
			_, err := io.ReadAll(r)
			if err == nil && r.Close() == nil {
				t.Fatalf("size %d: truncated stream accepted", size)
			}
		}
		// Wrong key, no key.
		other := make([]byte, 32)
		rand.Read(other)
		r, _ = newBackupReader(bytes.NewReader(enc.Bytes()), other)
		if _, err := io.ReadAll(r); err == nil || !strings.Contains(err.Error(), "wrong key") {
			t.Fatalf("wrong key: %v", err)
		}
		if _, err := newBackupReader(bytes.NewReader(enc.Bytes()), nil); err == nil {
			t.Fatal("encrypted backup opened without a key")
		}
	}
	// Without a key, the stream passes through, and a reader with a key
	// accepts a plain backup.
	var plain bytes.Buffer
	w, _ := newBackupWriter(&plain, nil)
	w.Write([]byte("tar bytes"))
	w.Close()
	r, _ := newBackupReader(bytes.NewReader(plain.Bytes()), key)
	if got, _ := io.ReadAll(r); string(got) != "tar bytes" {
		t.Fatalf("plain: %q", got)
	}
}
