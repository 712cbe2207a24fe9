package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
)

// EncryptionKeySize is the size of the store's encryption key: AES-256.
const EncryptionKeySize = 32

// ReadEncryptionKey reads the store's encryption key from path: 32 raw
// bytes (head -c 32 /dev/urandom), or their hex or base64 spelling on one
// line. Any other size is refused rather than padded or hashed, so that a
// truncated or wrong file fails loudly instead of opening a different,
// empty store.
func ReadEncryptionKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading encryption key: %w", err)
	}
	if len(data) == EncryptionKeySize {
		return data, nil
	}
	text := bytes.TrimSpace(data)
	if k, err := hex.DecodeString(string(text)); err == nil && len(k) == EncryptionKeySize {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(string(text)); err == nil && len(k) == EncryptionKeySize {
		return k, nil
	}
	return nil, fmt.Errorf("encryption key %s: want exactly %d bytes, raw or as hex (64 digits) or base64 (44 characters); the file has %d bytes (make one with: head -c 32 /dev/urandom > %s)",
		path, EncryptionKeySize, len(data), path)
}
