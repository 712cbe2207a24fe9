package config

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteSelfSigned: the pair loads as serve loads it, names the hosts,
// can be trusted as its own CA, keeps the key private, and is not
// overwritten without force.
func TestWriteSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	certFile, keyFile, err := WriteSelfSigned(dir, []string{"mail.example.org", " 127.0.0.1", ""}, 48*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (TLS{Cert: certFile, Key: keyFile}).LoadCertificate(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(certFile)
	block, _ := pem.Decode(raw)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || cert.Subject.CommonName != "mail.example.org" || len(cert.IPAddresses) != 1 || cert.NotAfter.Sub(time.Now()) > 49*time.Hour {
		t.Errorf("certificate: CA %v, CN %q, IPs %v, until %v", cert.IsCA, cert.Subject.CommonName, cert.IPAddresses, cert.NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "mail.example.org", Roots: roots}); err != nil {
		t.Errorf("not trusted as its own CA: %v", err)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	if _, _, err := WriteSelfSigned(dir, []string{"x.example"}, time.Hour, false); err == nil {
		t.Error("existing files overwritten without force")
	}
	os.Chmod(keyFile, 0o644)
	if _, _, err := WriteSelfSigned(dir, []string{"x.example"}, time.Hour, true); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode after --force %v", fi.Mode())
	}
	if _, _, err := WriteSelfSigned(dir, []string{" "}, time.Hour, true); err == nil {
		t.Error("no hosts accepted")
	}
}
