package receipts

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPEMRoundTrip(t *testing.T) {
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := MarshalPrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(privPEM), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("private PEM starts %q", privPEM[:30])
	}
	priv2, err := ParsePrivateKeyPEM(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Equal(priv2) {
		t.Error("private key changed in a PEM round trip")
	}
	pub := priv.Public().(ed25519.PublicKey)
	pubPEM, err := MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pubPEM), "-----BEGIN PUBLIC KEY-----\n") {
		t.Errorf("public PEM starts %q", pubPEM[:30])
	}
	pub2, err := ParsePublicKeyPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(pub2) {
		t.Error("public key changed in a PEM round trip")
	}
}

func TestParsePEMErrors(t *testing.T) {
	priv, _ := GenerateKey()
	privPEM, _ := MarshalPrivateKeyPEM(priv)
	pubPEM, _ := MarshalPublicKeyPEM(priv.Public().(ed25519.PublicKey))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPrivDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPrivPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecPrivDER})
	ecPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER})
	garbageDER := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("not DER")})
	withHeaders := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}})

	pubCases := []struct {
		name, in, want string
	}{
		{"empty", "", "no PEM block found"},
		{"garbage", "hello", "no PEM block found"},
		{"private given", string(privPEM), `PEM block is "PRIVATE KEY", want "PUBLIC KEY"`},
		{"EC key", string(ecPubPEM), "want an Ed25519 key"},
		{"bad DER", string(garbageDER), "parse public key: not a PKIX public key"},
		{"trailing block", string(pubPEM) + string(pubPEM), "unexpected data after the PEM block"},
		{"headers", string(withHeaders), "PEM block has headers"},
		{"huge", strings.Repeat("a", maxPEMSize+1), "too large"},
	}
	for _, c := range pubCases {
		_, err := ParsePublicKeyPEM([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParsePublicKeyPEM(%s) error = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	privCases := []struct {
		name, in, want string
	}{
		{"empty", "", "no PEM block found"},
		{"public given", string(pubPEM), `PEM block is "PUBLIC KEY", want "PRIVATE KEY"`},
		{"EC key", string(ecPrivPEM), "want an Ed25519 key"},
		{"trailing garbage", string(privPEM) + "x", "unexpected data after the PEM block"},
	}
	for _, c := range privCases {
		_, err := ParsePrivateKeyPEM([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParsePrivateKeyPEM(%s) error = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	// Trailing white space is not "data".
	if _, err := ParsePublicKeyPEM(append(pubPEM, "\n\n"...)); err != nil {
		t.Errorf("trailing newlines: %v", err)
	}
}

// TestKeyIDRFC8037 checks the thumbprint against RFC 8037, appendix A.3.
func TestKeyIDRFC8037(t *testing.T) {
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	const want = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
	if got := KeyID(ed25519.PublicKey(x)); got != want {
		t.Errorf("KeyID = %q, want %q", got, want)
	}
	if got := KeyID(ed25519.PublicKey(x[:5])); got != "" {
		t.Errorf("KeyID(short key) = %q, want empty", got)
	}
}

func TestPublicJWK(t *testing.T) {
	priv, _ := GenerateKey()
	pub := priv.Public().(ed25519.PublicKey)
	jwk := PublicJWK(pub)
	if jwk.KeyID != KeyID(pub) || !jwk.IsPublic() {
		t.Fatalf("PublicJWK = %+v", jwk)
	}
	data, err := json.Marshal(jwk)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m["kty"] != "OKP" || m["crv"] != "Ed25519" || m["kid"] != KeyID(pub) || m["alg"] != "EdDSA" || m["d"] != "" {
		t.Errorf("JWK JSON = %s", data)
	}
}

func TestLoadOrCreateGatewayKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.pem")
	k1, err := LoadOrCreateGatewayKey(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %#o, want 0600", perm)
	}
	k2, err := LoadOrCreateGatewayKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Error("second load returned a different key")
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateGatewayKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: error = %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("nonsense"), 0o600)
	if _, err := LoadOrCreateGatewayKey(bad); err == nil || !strings.Contains(err.Error(), "no PEM block") {
		t.Errorf("garbage key file: error = %v", err)
	}
	if _, err := LoadOrCreateGatewayKey(filepath.Join(t.TempDir(), "missing-dir", "k.pem")); err == nil {
		t.Error("key in a missing directory: no error")
	}
}
