package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheckTLSFiles: `config check` used to pass a configuration
// whose TLS files do not exist, and serve then failed; now both refuse it
// with the same message, and both accept it once the files are there.
func TestConfigCheckTLSFiles(t *testing.T) {
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	cfg := filepath.Join(dir, "certmail.toml")
	body := "data = \"" + filepath.Join(dir, "data") + "\"\n[listen]\nimap = \"127.0.0.1:0\"\nlmtp = \"\"\nhttp = \"\"\n" +
		"[tls]\ncert = \"" + filepath.Join(tlsDir, "cert.pem") + "\"\nkey = \"" + filepath.Join(tlsDir, "key.pem") + "\"\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := certmail(t, "", "config", "check", cfg).must(t, exitFailure)
	if !strings.Contains(r.stderr, "loading TLS certificate "+filepath.Join(tlsDir, "cert.pem")) {
		t.Fatalf("config check: %s", r.stderr)
	}
	s := certmail(t, "", "serve", "--config", cfg).must(t, exitFailure)
	if !strings.Contains(s.stderr, strings.TrimSpace(r.stderr)) {
		t.Fatalf("serve says %q, config check %q", s.stderr, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Fatal("serve created the data directory before checking its files")
	}

	// A key that does not match the certificate is refused too.
	certmail(t, "", "tls", "selfsigned", "--host", "localhost", "--out", tlsDir).must(t, 0)
	other := filepath.Join(dir, "other")
	certmail(t, "", "tls", "selfsigned", "--host", "localhost", "--out", other).must(t, 0)
	key, _ := os.ReadFile(filepath.Join(tlsDir, "key.pem"))
	os.WriteFile(filepath.Join(tlsDir, "key.pem"), mustReadFile(t, filepath.Join(other, "key.pem")), 0o600)
	if r := certmail(t, "", "config", "check", cfg).must(t, exitFailure); !strings.Contains(r.stderr, "private key does not match") {
		t.Fatalf("mismatched key: %s", r.stderr)
	}
	os.WriteFile(filepath.Join(tlsDir, "key.pem"), key, 0o600)
	certmail(t, "", "config", "check", cfg).must(t, exitOK)
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
