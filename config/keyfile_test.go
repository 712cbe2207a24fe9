package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadEncryptionKey(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0xa5}, 32)
	for name, data := range map[string][]byte{
		"raw":    key,
		"hex":    []byte(hex.EncodeToString(key) + "\n"),
		"base64": []byte(base64.StdEncoding.EncodeToString(key) + "\n"),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		got, err := ReadEncryptionKey(p)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%s: %x %v", name, got, err)
		}
	}
	for name, data := range map[string][]byte{
		"short":   key[:16],
		"long":    append(key, 1),
		"hex16":   []byte(hex.EncodeToString(key[:16]) + "\n"), // 32 characters alone would be a raw key
		"garbage": []byte("not a key at all"),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		if _, err := ReadEncryptionKey(p); err == nil || !strings.Contains(err.Error(), "want exactly 32 bytes") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// In a config file, a bad key is reported with the key's line.
	bad := filepath.Join(dir, "short")
	_, err := Parse("x.toml", []byte("data = \"d\"\nencryption_key_file = \""+bad+"\"\n"))
	if err == nil || !strings.Contains(err.Error(), "x.toml:2: encryption_key_file: encryption key") {
		t.Fatalf("got %v", err)
	}
}

func TestParseOpsKeys(t *testing.T) {
	cfg, err := Parse("x.toml", []byte(`
[limits]
max_connections_per_ip = 3
max_sessions_per_user = 0
loopback_exempt = false
login_free_failures = 1
login_max_failures = 2
login_delay = "10ms"
login_lockout = "1m"
[autoconfig]
imap_host = "imap.example.org"
imap_socket_type = "SSL"
smtp_host = "smtp.example.org"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MaxConnectionsPerIP != 3 || cfg.Limits.LoopbackExempt || cfg.Limits.LoginMaxFailures != 2 ||
		cfg.Autoconfig.IMAPHost != "imap.example.org" || cfg.Autoconfig.SMTPPort != 587 {
		t.Fatalf("got %+v %+v", cfg.Limits, cfg.Autoconfig)
	}
	for _, in := range []string{
		"[limits]\nlogin_max_failures = 1\nlogin_free_failures = 3\n",
		"[autoconfig]\nimap_socket_type = \"TLS\"\n",
		"[limits]\nmax_connections_per_ip = -1\n",
	} {
		if _, err := Parse("x.toml", []byte(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}
