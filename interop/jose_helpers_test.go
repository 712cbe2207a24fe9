package interop

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"
	"github.com/go-jose/go-jose/v4"

	"certmail/receipts"
)

var regexpLabel = regexp.MustCompile(`cm-[a-z2-7]{26}`)

// verifyNoticeRecords checks every application/jose attachment of a notice
// with a stock JOSE library and the gateway key, except the recipient's own
// COD (signed by the recipient, typ certmail-cod+jws).
func verifyNoticeRecords(t *testing.T, raw []byte, gatewayPEM string) {
	t.Helper()
	pub, err := receipts.ParsePublicKeyPEM([]byte(gatewayPEM))
	if err != nil {
		t.Fatalf("gateway key from key show: %v\n%s", err, gatewayPEM)
	}
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	verified := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ah, ok := p.Header.(*mail.AttachmentHeader)
		if !ok {
			continue
		}
		ct, _, _ := ah.ContentType()
		if ct != "application/jose" {
			continue
		}
		body, _ := io.ReadAll(p.Body)
		jws, err := jose.ParseSigned(strings.TrimSpace(string(body)), []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatalf("attachment is not a JWS: %v", err)
		}
		if typ, _ := jws.Signatures[0].Protected.ExtraHeaders["typ"].(string); typ == receipts.CODMediaType {
			continue
		}
		payload, err := jws.Verify(ed25519.PublicKey(pub))
		if err != nil {
			t.Fatalf("a record does not verify with the gateway key: %v", err)
		}
		var rec map[string]any
		if err := json.Unmarshal(payload, &rec); err != nil {
			t.Fatal(err)
		}
		verified++
	}
	if verified < 2 {
		t.Fatalf("verified %d records in the notice, want the COD acceptance and the ROD", verified)
	}
}
