package receipts

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

// Seeds are deterministic so that the committed corpus under
// testdata/fuzz stays meaningful.

func fuzzKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

func fuzzCOD() string {
	label := LabelPrefix + labelEncoding.EncodeToString(bytes.Repeat([]byte{0x42}, labelRandomBytes))
	req := NewCODRequest("mail.example.org", label, ItemHash(label, []byte("m")), "bob@example.org", time.Time{})
	cod, err := SignCOD(fuzzKey(), req.Claims(DecisionCOD, CustodyGatewayHeld, time.Unix(1767225600, 0)))
	if err != nil {
		panic(err)
	}
	return cod
}

// FuzzParseSalt: a salt has one spelling; whatever parses writes back as
// the input, and nothing else parses.
func FuzzParseSalt(f *testing.F) {
	f.Add(strings.Repeat("5a", SaltSize))
	f.Add(strings.Repeat("5A", SaltSize))
	f.Add(strings.Repeat("0", 2*SaltSize-1) + "g")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		salt, err := ParseSalt(s)
		if err == nil && salt.String() != s {
			t.Fatalf("ParseSalt(%q) accepted a spelling String writes as %q", s, salt)
		}
	})
}

func FuzzParseCOD(f *testing.F) {
	cod := fuzzCOD()
	f.Add(cod)
	f.Add(" " + cod + "\r\n")
	f.Add(cod[:len(cod)/2])
	f.Add("eyJ.eyJ.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) {
		claims, kid, err := ParseCOD(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedCOD) {
				t.Fatalf("error does not wrap ErrMalformedCOD: %v", err)
			}
			return
		}
		if kid == "" {
			t.Fatal("valid COD with empty kid")
		}
		// Whatever parses is canonical: re-encoding the claims gives
		// back the very payload bytes.
		payload, err := claims.canonicalPayload()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Split(strings.TrimSpace(s), ".")[1]; got != b64(payload) {
			t.Fatalf("payload %q re-encodes as %q", got, b64(payload))
		}
		if err := claims.validate(); err != nil {
			t.Fatalf("parsed claims do not validate: %v", err)
		}
	})
}

func FuzzExtractCOD(f *testing.F) {
	cod := fuzzCOD()
	f.Add([]byte(cod))
	f.Add([]byte("Subject: x\r\n\r\nmy COD: " + cod + "\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--B\r\nContent-Type: application/jose\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"ZXlKaGJHY2lPaUpGWkVSVFFTSjkuZXlKMklqb3hmUS5BQUFB\r\n--B--\r\n"))
	f.Add([]byte("Content-Type: application/certmail-cod+jws\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		cod[:70] + "=\r\n" + cod[70:] + "\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := ExtractCOD(raw)
		if err != nil {
			return
		}
		if _, _, err := ParseCOD(got); err != nil {
			t.Fatalf("ExtractCOD returned %q, which ParseCOD rejects: %v", got, err)
		}
	})
}

// fuzzMaxMemoryKiB keeps each fuzzed argon2id run cheap.
const fuzzMaxMemoryKiB = minKDFMemoryKiB

func FuzzUnsealKey(f *testing.F) {
	priv := fuzzKey()
	sealed, err := SealKeyWithParams(priv, []byte("pw"), KDFParams{Time: 1, MemoryKiB: fuzzMaxMemoryKiB, Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, []byte("pw"))
	f.Add(sealed, []byte("wrong"))
	f.Add([]byte(`{"v":1}`), []byte("pw"))
	f.Add([]byte(`{}`), []byte(""))
	f.Fuzz(func(t *testing.T, sealed, password []byte) {
		got, err := unsealKey(sealed, password, fuzzMaxMemoryKiB)
		if err != nil {
			if !errors.Is(err, ErrWrongPassword) && !errors.Is(err, ErrMalformedSealedKey) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		pub, err := SealedPublicKey(sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !pub.Equal(got.Public()) {
			t.Fatal("unsealed key does not match the recorded public key")
		}
	})
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	pem, err := MarshalPublicKeyPEM(fuzzKey().Public().(ed25519.PublicKey))
	if err != nil {
		f.Fatal(err)
	}
	privPEM, err := MarshalPrivateKeyPEM(fuzzKey())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem)
	f.Add(privPEM)
	f.Add(append(pem, pem...))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := ParsePublicKeyPEM(data)
		if err != nil {
			return
		}
		again, err := MarshalPublicKeyPEM(pub)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParsePublicKeyPEM(again)
		if err != nil || !back.Equal(pub) {
			t.Fatalf("round trip of a parsed key failed: %v", err)
		}
		if KeyID(pub) == "" {
			t.Fatal("parsed key has no KeyID")
		}
	})
}
