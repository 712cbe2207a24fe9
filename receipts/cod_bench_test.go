package receipts

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"
)

func benchCOD(b *testing.B) (string, ed25519.PublicKey) {
	b.Helper()
	priv, err := GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	hash := sha256.Sum256([]byte("M"))
	req := NewCODRequest("mail.example.org", "cm-0123456789abcdefghjkmnpqrs", hash, "alice", time.Now().Add(72*time.Hour))
	cod, err := SignCOD(priv, req.Claims(DecisionCOD, CustodyRecipientHeld, time.Now()))
	if err != nil {
		b.Fatal(err)
	}
	return cod, priv.Public().(ed25519.PublicKey)
}

// BenchmarkVerifyCOD is what the gateway does with every COD handed in:
// strict parsing of the compact JWS and the Ed25519 signature check.
func BenchmarkVerifyCOD(b *testing.B) {
	cod, pub := benchCOD(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyCOD(cod, pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignCOD is the custody signature the gateway makes for a
// recipient who acknowledges from a mail client.
func BenchmarkSignCOD(b *testing.B) {
	priv, _ := GenerateKey()
	hash := sha256.Sum256([]byte("M"))
	req := NewCODRequest("mail.example.org", "cm-0123456789abcdefghjkmnpqrs", hash, "alice", time.Now().Add(72*time.Hour))
	claims := req.Claims(DecisionCOD, CustodyGatewayHeld, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignCOD(priv, claims); err != nil {
			b.Fatal(err)
		}
	}
}
