package backup

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	be "encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Backups of an encrypted store are encrypted with the same key, so that
// encryption at rest does not end at the backup file. The format is a
// magic line, a random salt, then chunks: a 4-byte big-endian length
// (top bit set on the last chunk) and AES-256-GCM ciphertext of up to
// 64 KiB, under a key derived from the store key and the salt, with the
// chunk's number as nonce. The final flag is authenticated (it is the
// additional data), so a truncated file fails instead of restoring part.
const (
	backupMagic     = "CERTMAIL-BACKUP-AES256GCM-1\n"
	backupChunk     = 64 << 10
	backupFinalFlag = 1 << 31
)

func backupAEAD(key, salt []byte) (cipher.AEAD, error) {
	sub, err := hkdf.Key(sha256.New, key, salt, "certmail backup v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func chunkNonce(n uint64) []byte {
	nonce := make([]byte, 12)
	be.BigEndian.PutUint64(nonce, n)
	return nonce
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// newBackupWriter encrypts what is written to w under key; with no key it
// passes it through. Close writes the final chunk (it does not close w).
func newBackupWriter(w io.Writer, key []byte) (io.WriteCloser, error) {
	if len(key) == 0 {
		return nopWriteCloser{w}, nil
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	aead, err := backupAEAD(key, salt)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, backupMagic); err != nil {
		return nil, err
	}
	if _, err := w.Write(salt); err != nil {
		return nil, err
	}
	return &encWriter{w: w, aead: aead, buf: make([]byte, 0, backupChunk)}, nil
}

type encWriter struct {
	w    io.Writer
	aead cipher.AEAD
	buf  []byte
	n    uint64
	err  error
}

func (e *encWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 && e.err == nil {
		k := min(len(p), backupChunk-len(e.buf))
		e.buf = append(e.buf, p[:k]...)
		p, written = p[k:], written+k
		if len(e.buf) == backupChunk {
			e.err = e.flush(false)
		}
	}
	return written, e.err
}

func (e *encWriter) flush(final bool) error {
	ad := []byte{0}
	if final {
		ad[0] = 1
	}
	ct := e.aead.Seal(nil, chunkNonce(e.n), e.buf, ad)
	e.n++
	e.buf = e.buf[:0]
	hdr := uint32(len(ct))
	if final {
		hdr |= backupFinalFlag
	}
	if err := be.Write(e.w, be.BigEndian, hdr); err != nil {
		return err
	}
	_, err := e.w.Write(ct)
	return err
}

func (e *encWriter) Close() error {
	if e.err != nil {
		return e.err
	}
	e.err = e.flush(true)
	if e.err == nil {
		e.err = errors.New("backup writer closed")
		return nil
	}
	return e.err
}

// backupReader reads what newBackupWriter wrote. Close reports whether an
// encrypted stream ended properly.
type backupReader interface {
	io.Reader
	Close() error
}

type plainReader struct{ io.Reader }

func (plainReader) Close() error { return nil }

func newBackupReader(r io.Reader, key []byte) (backupReader, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(len(backupMagic))
	if !bytes.Equal(head, []byte(backupMagic)) {
		return plainReader{br}, nil
	}
	if len(key) == 0 {
		return nil, errors.New("the backup is encrypted: restore with the config (encryption_key_file) of the server that wrote it")
	}
	br.Discard(len(backupMagic))
	salt := make([]byte, 32)
	if _, err := io.ReadFull(br, salt); err != nil {
		return nil, fmt.Errorf("encrypted backup: %w", err)
	}
	aead, err := backupAEAD(key, salt)
	if err != nil {
		return nil, err
	}
	return &decReader{r: br, aead: aead}, nil
}

type decReader struct {
	r     io.Reader
	aead  cipher.AEAD
	n     uint64
	buf   []byte
	final bool
}

func (d *decReader) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		if d.final {
			return 0, io.EOF
		}
		var hdr uint32
		if err := be.Read(d.r, be.BigEndian, &hdr); err != nil {
			return 0, fmt.Errorf("encrypted backup is truncated: %w", err)
		}
		final := hdr&backupFinalFlag != 0
		size := int(hdr &^ backupFinalFlag)
		if size > backupChunk+d.aead.Overhead() {
			return 0, errors.New("encrypted backup: corrupt chunk length")
		}
		ct := make([]byte, size)
		if _, err := io.ReadFull(d.r, ct); err != nil {
			return 0, fmt.Errorf("encrypted backup is truncated: %w", err)
		}
		ad := []byte{0}
		if final {
			ad[0] = 1
		}
		pt, err := d.aead.Open(ct[:0], chunkNonce(d.n), ct, ad)
		if err != nil {
			return 0, errors.New("encrypted backup: wrong key (encryption_key_file) or corrupt file")
		}
		d.n++
		d.buf, d.final = pt, final
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func (d *decReader) Close() error {
	if !d.final {
		return errors.New("encrypted backup ends early (truncated)")
	}
	return nil
}
