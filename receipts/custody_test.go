package receipts

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func mustSeal(t testing.TB, priv ed25519.PrivateKey, password string) []byte {
	t.Helper()
	sealed, err := SealKey(priv, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func TestSealUnseal(t *testing.T) {
	priv, _ := GenerateKey()
	sealed := mustSeal(t, priv, "correct horse")
	if bytes.Contains(sealed, priv.Seed()) || bytes.Contains(sealed, []byte(b64(priv.Seed()))) {
		t.Fatal("sealed blob contains the seed in the clear")
	}
	got, err := UnsealKey(sealed, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Equal(got) {
		t.Error("unsealed a different key")
	}
	pub, err := SealedPublicKey(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Error("SealedPublicKey differs from the key's public key")
	}
	// Sealing twice gives different blobs: fresh salt and nonce.
	if bytes.Equal(sealed, mustSeal(t, priv, "correct horse")) {
		t.Error("two seals of one key are identical")
	}
}

func TestUnsealWrongPassword(t *testing.T) {
	priv, _ := GenerateKey()
	sealed := mustSeal(t, priv, "right")
	for _, pw := range []string{"wrong", "", "right ", "Right"} {
		if _, err := UnsealKey(sealed, []byte(pw)); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("UnsealKey(password %q) error = %v, want ErrWrongPassword", pw, err)
		}
	}
}

// TestUnsealTampered changes each authenticated field in turn: whatever
// still parses must fail authentication.
func TestUnsealTampered(t *testing.T) {
	priv, _ := GenerateKey()
	other, _ := GenerateKey()
	sealed := mustSeal(t, priv, "pw")
	edits := map[string]func(m map[string]any){
		"time":       func(m map[string]any) { m["time"] = 2 },
		"memory":     func(m map[string]any) { m["memory_kib"] = 20 * 1024 },
		"threads":    func(m map[string]any) { m["threads"] = 1 },
		"salt":       func(m map[string]any) { m["salt"] = b64(make([]byte, sealedSaltLen)) },
		"nonce":      func(m map[string]any) { m["nonce"] = b64(make([]byte, 24)) },
		"public_key": func(m map[string]any) { m["public_key"] = b64(other.Public().(ed25519.PublicKey)) },
		"ciphertext": func(m map[string]any) { m["ciphertext"] = b64(make([]byte, 48)) },
	}
	for name, edit := range edits {
		var m map[string]any
		if err := json.Unmarshal(sealed, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		tampered, _ := json.Marshal(m)
		if _, err := UnsealKey(tampered, []byte("pw")); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("%s changed: error = %v, want ErrWrongPassword", name, err)
		}
	}
}

func TestUnsealMalformed(t *testing.T) {
	priv, _ := GenerateKey()
	sealed := mustSeal(t, priv, "pw")
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		json.Unmarshal(sealed, &m)
		f(m)
		out, _ := json.Marshal(m)
		return string(out)
	}
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", "malformed sealed key: empty"},
		{"not JSON", "hello", "malformed sealed key: invalid character"},
		{"array", "[]", "malformed sealed key: json: cannot unmarshal array"},
		{"trailing", string(sealed) + "{}", "data after the JSON object"},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = 1 }), `unknown field "extra"`},
		{"version", edit(func(m map[string]any) { m["v"] = 2 }), "version 2, want 1"},
		{"kdf", edit(func(m map[string]any) { m["kdf"] = "scrypt" }), `kdf "scrypt", want "argon2id"`},
		{"cipher", edit(func(m map[string]any) { m["cipher"] = "aes" }), `cipher "aes"`},
		{"zero time", edit(func(m map[string]any) { m["time"] = 0 }), "argon2id time 0 out of range"},
		{"huge memory", edit(func(m map[string]any) { m["memory_kib"] = 4 << 20 }), "argon2id memory 4194304 KiB out of range"},
		{"tiny memory", edit(func(m map[string]any) { m["memory_kib"] = 8 }), "argon2id memory 8 KiB out of range"},
		{"no threads", edit(func(m map[string]any) { m["threads"] = 0 }), "threads must be at least 1"},
		{"salt base64", edit(func(m map[string]any) { m["salt"] = "!!" }), "salt: illegal base64"},
		{"salt padded", edit(func(m map[string]any) { m["salt"] = "AAAAAAAAAAAAAAAAAAAAAA==" }), "salt: illegal base64"},
		{"short salt", edit(func(m map[string]any) { m["salt"] = "AAAA" }), "salt has 3 bytes, want 16"},
		{"short nonce", edit(func(m map[string]any) { m["nonce"] = "AAAA" }), "nonce has 3 bytes, want 24"},
		{"short public key", edit(func(m map[string]any) { m["public_key"] = "AAAA" }), "public_key has 3 bytes, want 32"},
		{"missing ciphertext", edit(func(m map[string]any) { delete(m, "ciphertext") }), "ciphertext has 0 bytes, want 48"},
		{"too large", strings.Repeat(" ", maxSealedSize+1), "too large"},
	}
	for _, c := range cases {
		_, err := UnsealKey([]byte(c.in), []byte("pw"))
		if !errors.Is(err, ErrMalformedSealedKey) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error = %v, want ErrMalformedSealedKey containing %q", c.name, err, c.want)
		}
	}
}

func TestResealKey(t *testing.T) {
	priv, _ := GenerateKey()
	old := mustSeal(t, priv, "old")
	if _, err := ResealKey(old, []byte("nope"), []byte("new")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("reseal with wrong old password: %v", err)
	}
	resealed, err := ResealKey(old, []byte("old"), []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnsealKey(resealed, []byte("old")); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("old password still opens the resealed key: %v", err)
	}
	got, err := UnsealKey(resealed, []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Equal(got) {
		t.Error("reseal changed the key")
	}
	if _, err := ResealKey(old, []byte("old"), nil); err == nil {
		t.Error("reseal to an empty password succeeded")
	}
}

func TestSealParams(t *testing.T) {
	priv, _ := GenerateKey()
	if _, err := SealKey(priv, nil); err == nil {
		t.Error("sealed with an empty password")
	}
	if _, err := SealKey(priv[:10], []byte("pw")); err == nil {
		t.Error("sealed a short key")
	}
	params := KDFParams{Time: 2, MemoryKiB: 8 * 1024, Threads: 1}
	sealed, err := SealKeyWithParams(priv, []byte("pw"), params)
	if err != nil {
		t.Fatal(err)
	}
	var s sealedKey
	json.Unmarshal(sealed, &s)
	if s.params() != params {
		t.Errorf("recorded params %+v, want %+v", s.params(), params)
	}
	if _, err := UnsealKey(sealed, []byte("pw")); err != nil {
		t.Error(err)
	}
	if _, err := SealKeyWithParams(priv, []byte("pw"), KDFParams{Time: 1, MemoryKiB: 1, Threads: 1}); err == nil {
		t.Error("sealed with 1 KiB of memory")
	}
}
