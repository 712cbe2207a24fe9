package receipts

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testItem is one certified item and B's key.
type testItem struct {
	gateway, label, recipient string
	hash                      [32]byte
	priv                      ed25519.PrivateKey
	pub                       ed25519.PublicKey
}

func newTestItem(t testing.TB) testItem {
	t.Helper()
	label, err := NewLabel()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return testItem{
		gateway:   "mail.example.org",
		label:     label,
		recipient: "bob@example.org",
		hash:      ItemHash(label, []byte("Subject: hi\r\n\r\nsecret body\r\n")),
		priv:      priv,
		pub:       priv.Public().(ed25519.PublicKey),
	}
}

var testNow = time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.FixedZone("CET", 3600))

func (it testItem) claims(d Decision) CODClaims {
	return NewCODRequest(it.gateway, it.label, it.hash, it.recipient, time.Time{}).
		Claims(d, CustodyRecipientHeld, testNow)
}

func (it testItem) sign(t testing.TB, d Decision) string {
	t.Helper()
	cod, err := SignCOD(it.priv, it.claims(d))
	if err != nil {
		t.Fatal(err)
	}
	return cod
}

// craftJWS signs arbitrary header and payload bytes, to test what
// ParseCOD does with JWSs SignCOD would never make.
func craftJWS(priv ed25519.PrivateKey, header, payload string) string {
	in := b64([]byte(header)) + "." + b64([]byte(payload))
	return in + "." + b64(ed25519.Sign(priv, []byte(in)))
}

func TestSignVerifyCOD(t *testing.T) {
	it := newTestItem(t)
	for _, d := range []Decision{DecisionCOD, DecisionRefusal} {
		cod := it.sign(t, d)
		claims, err := VerifyCOD(cod, it.pub)
		if err != nil {
			t.Fatal(err)
		}
		want := it.claims(d)
		want.SignedAt = time.Date(2026, 3, 1, 11, 30, 45, 0, time.UTC)
		if *claims != want {
			t.Errorf("claims = %+v, want %+v", *claims, want)
		}
		if err := claims.Check(it.gateway, it.label, it.hash); err != nil {
			t.Error(err)
		}
		parsed, kid, err := ParseCOD(" \r\n" + cod + "\r\n")
		if err != nil {
			t.Fatal(err)
		}
		if kid != KeyID(it.pub) || *parsed != want {
			t.Errorf("ParseCOD = %+v, %q", parsed, kid)
		}
	}
}

// TestCODWireForm pins the exact header and payload bytes.
func TestCODWireForm(t *testing.T) {
	it := newTestItem(t)
	cod := it.sign(t, DecisionCOD)
	parts := strings.Split(cod, ".")
	header, _ := strictB64.DecodeString(parts[0])
	payload, _ := strictB64.DecodeString(parts[1])
	wantHeader := `{"alg":"EdDSA","kid":"` + KeyID(it.pub) + `","typ":"certmail-cod+jws"}`
	if string(header) != wantHeader {
		t.Errorf("header = %s, want %s", header, wantHeader)
	}
	wantPayload := `{"custody":"recipient-held","gateway":"mail.example.org","hash":"` + FormatHash(it.hash) +
		`","label":"` + it.label + `","recipient":"bob@example.org","signed_at":"2026-03-01T11:30:45Z","type":"cod","v":1}`
	if string(payload) != wantPayload {
		t.Errorf("payload = %s\nwant %s", payload, wantPayload)
	}
}

// TestCODInterop checks that a generic JOSE library agrees with us both
// ways, as DESIGN.md promises.
func TestCODInterop(t *testing.T) {
	it := newTestItem(t)
	cod := it.sign(t, DecisionCOD)
	jws, err := jose.ParseSignedCompact(cod, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify(it.pub)
	if err != nil {
		t.Fatalf("go-jose does not verify our COD: %v", err)
	}
	if jws.Signatures[0].Header.KeyID != KeyID(it.pub) {
		t.Errorf("go-jose sees kid %q", jws.Signatures[0].Header.KeyID)
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil || m["label"] != it.label {
		t.Errorf("go-jose payload %s", payload)
	}

	// And a COD made with go-jose, from our canonical payload, verifies.
	claims := it.claims(DecisionRefusal)
	canonical, err := claims.canonicalPayload()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: it.priv, KeyID: KeyID(it.pub)}},
		(&jose.SignerOptions{}).WithType(CODMediaType))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := signer.Sign(canonical)
	if err != nil {
		t.Fatal(err)
	}
	compact, err := signed.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyCOD(compact, it.pub)
	if err != nil {
		t.Fatalf("we do not verify go-jose's COD: %v", err)
	}
	if got.Type != DecisionRefusal {
		t.Errorf("type = %q", got.Type)
	}
}

// TestCODTamper changes every byte of a COD in turn: none may verify.
func TestCODTamper(t *testing.T) {
	it := newTestItem(t)
	cod := it.sign(t, DecisionCOD)
	for i := range len(cod) {
		for _, c := range []byte{'A', 'B', '_', '.'} {
			if cod[i] == c {
				continue
			}
			tampered := cod[:i] + string(c) + cod[i+1:]
			if _, err := VerifyCOD(tampered, it.pub); err == nil {
				t.Fatalf("byte %d changed to %q: still verifies", i, c)
			}
		}
	}
	if _, err := VerifyCOD(cod[:len(cod)-1], it.pub); err == nil {
		t.Error("truncated COD verifies")
	}
}

func TestVerifyCODWrongKey(t *testing.T) {
	it := newTestItem(t)
	other := newTestItem(t)
	cod := it.sign(t, DecisionCOD)
	_, err := VerifyCOD(cod, other.pub)
	if !errors.Is(err, ErrCODSignature) || !strings.Contains(err.Error(), "signed by key "+KeyID(it.pub)) {
		t.Errorf("wrong key: %v", err)
	}
	// A forger who copies B's kid into the header still fails.
	parts := strings.Split(cod, ".")
	header, _ := strictB64.DecodeString(parts[0])
	payload, _ := strictB64.DecodeString(parts[1])
	forged := craftJWS(other.priv, string(header), string(payload))
	_, err = VerifyCOD(forged, it.pub)
	if !errors.Is(err, ErrCODSignature) || strings.Contains(err.Error(), "signed by key") {
		t.Errorf("forged kid: %v", err)
	}
	if _, err := VerifyCOD(cod, it.pub[:31]); err == nil {
		t.Error("short public key accepted")
	}
}

func TestCODCheck(t *testing.T) {
	it := newTestItem(t)
	claims, err := VerifyCOD(it.sign(t, DecisionCOD), it.pub)
	if err != nil {
		t.Fatal(err)
	}
	otherLabel, _ := NewLabel()
	otherHash := ItemHash(it.label, []byte("other"))
	cases := []struct {
		name, gateway, label string
		hash                 [32]byte
		want                 []string
	}{
		{"gateway", "evil.example", it.label, it.hash, []string{`gateway is "mail.example.org", want "evil.example"`}},
		{"label", it.gateway, otherLabel, it.hash, []string{`label is "` + it.label + `", want "` + otherLabel + `"`}},
		{"hash", it.gateway, it.label, otherHash, []string{"hash is " + FormatHash(it.hash) + ", want " + FormatHash(otherHash)}},
		{"all", "x", otherLabel, otherHash, []string{"gateway is", "label is", "hash is"}},
	}
	for _, c := range cases {
		err := claims.Check(c.gateway, c.label, c.hash)
		if !errors.Is(err, ErrCODMismatch) {
			t.Errorf("%s: error = %v, want ErrCODMismatch", c.name, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
}

func TestParseCODMalformed(t *testing.T) {
	it := newTestItem(t)
	kid := KeyID(it.pub)
	goodHeader := `{"alg":"EdDSA","kid":"` + kid + `","typ":"certmail-cod+jws"}`
	payloadOf := func(edit func(m map[string]any)) string {
		canonical, _ := func() ([]byte, error) { c := it.claims(DecisionCOD); return c.canonicalPayload() }()
		var m map[string]any
		json.Unmarshal(canonical, &m)
		edit(m)
		// encoding/json sorts map keys, which for these ASCII names is
		// the RFC 8785 order too.
		out, _ := json.Marshal(m)
		return string(out)
	}
	goodPayload := payloadOf(func(map[string]any) {})
	good := craftJWS(it.priv, goodHeader, goodPayload)
	if _, _, err := ParseCOD(good); err != nil {
		t.Fatalf("crafted good COD: %v", err)
	}
	parts := strings.Split(good, ".")
	withPayload := func(p string) string { return craftJWS(it.priv, goodHeader, p) }
	withHeader := func(h string) string { return craftJWS(it.priv, h, goodPayload) }
	set := func(k string, v any) string { return withPayload(payloadOf(func(m map[string]any) { m[k] = v })) }

	cases := []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"spaces", "  \n ", "empty"},
		{"one part", "abc", "has 3 dot-separated parts, this has 1"},
		{"four parts", good + ".x", "this has 4"},
		{"JSON serialization", `{"payload":"x"}`, "this has 1"},
		{"too long", strings.Repeat("a", maxCODSize+1), "too long"},
		{"empty header", "." + parts[1] + "." + parts[2], "protected header is empty"},
		{"padded header", parts[0] + "=." + parts[1] + "." + parts[2], "protected header is not unpadded base64url"},
		{"std base64 header", strings.ReplaceAll(parts[0], "-", "+") + "+." + parts[1] + "." + parts[2], "not unpadded base64url"},
		{"empty signature", parts[0] + "." + parts[1] + ".", "signature is empty"},
		{"short signature", parts[0] + "." + parts[1] + ".AAAA", "signature has 3 bytes"},
		{"space inside", parts[0] + ". " + parts[1] + "." + parts[2], "payload is not unpadded base64url"},

		{"header not JSON", withHeader("alg"), "protected header is not valid JSON"},
		{"header array", withHeader("[]"), "protected header is not a JSON object"},
		{"alg none", withHeader(`{"alg":"none","kid":"` + kid + `","typ":"certmail-cod+jws"}`), `alg is "none"`},
		{"alg HS256", withHeader(`{"alg":"HS256","kid":"` + kid + `","typ":"certmail-cod+jws"}`), `alg is "HS256"`},
		{"typ JWT", withHeader(`{"alg":"EdDSA","kid":"` + kid + `","typ":"JWT"}`), `typ is "JWT"`},
		{"no typ", withHeader(`{"alg":"EdDSA","kid":"` + kid + `"}`), "protected header: missing typ"},
		{"no kid", withHeader(`{"alg":"EdDSA","typ":"certmail-cod+jws"}`), "protected header: missing kid"},
		{"bad kid", withHeader(`{"alg":"EdDSA","kid":"me","typ":"certmail-cod+jws"}`), `kid "me" is not a JWK SHA-256 thumbprint`},
		{"kid number", withHeader(`{"alg":"EdDSA","kid":7,"typ":"certmail-cod+jws"}`), `protected header "kid" is not a string`},
		{"jwk in header", withHeader(`{"alg":"EdDSA","jwk":{},"kid":"` + kid + `","typ":"certmail-cod+jws"}`), `unexpected "jwk"`},
		{"crit", withHeader(`{"alg":"EdDSA","crit":["b64"],"b64":false,"kid":"` + kid + `","typ":"certmail-cod+jws"}`), `unexpected "b64", "crit"`},
		{"duplicate alg", withHeader(`{"alg":"none","alg":"EdDSA","kid":"` + kid + `","typ":"certmail-cod+jws"}`), "Duplicate key"},

		{"payload not JSON", withPayload("cod"), "payload is not valid JSON"},
		{"payload string", withPayload(`"x"`), "payload is not a JSON object"},
		{"payload null", withPayload(`null`), "payload is not a JSON object"},
		{"missing label", withPayload(payloadOf(func(m map[string]any) { delete(m, "label") })), "payload: missing label"},
		{"extra member", set("note", "x"), `payload: unexpected "note"`},
		{"upper-case name", withPayload(strings.Replace(goodPayload, `"v":1`, `"V":1`, 1)), `missing v; unexpected "V"`},
		{"duplicate member", withPayload(strings.Replace(goodPayload, `"v":1`, `"type":"refusal","v":1`, 1)), "Duplicate key"},
		{"v 2", set("v", 2), "v is 2, want 1"},
		{"v string", set("v", "1"), "cannot unmarshal string"},
		{"v float", withPayload(strings.Replace(goodPayload, `"v":1`, `"v":1.5`, 1)), "cannot unmarshal number 1.5"},
		{"type", set("type", "maybe"), `type is "maybe", want "cod" or "refusal"`},
		{"empty gateway", set("gateway", ""), "gateway is empty"},
		{"gateway control", set("gateway", "a\nb"), "gateway \"a\\nb\" contains control characters"},
		{"gateway space", set("gateway", " a"), "surrounding white space"},
		{"long recipient", set("recipient", strings.Repeat("r", 321)), "recipient is 321 bytes long"},
		{"label", set("label", "cm-x"), `label "cm-x" is not a certmail label`},
		{"hash prefix", set("hash", "md5:00"), `want prefix "sha256:"`},
		{"hash upper", set("hash", strings.ToUpper(FormatHash(it.hash)[7:])), `want prefix "sha256:"`},
		{"hash upper hex", set("hash", "sha256:"+strings.ToUpper(FormatHash(it.hash)[7:])), "hex digits must be lower case"},
		{"hash short", set("hash", "sha256:00"), "want 64 hex digits, have 2"},
		{"custody", set("custody", "mine"), `custody is "mine"`},
		{"signed_at fraction", set("signed_at", "2026-03-01T11:30:45.5Z"), "signed_at \"2026-03-01T11:30:45.5Z\" is not RFC 3339 UTC with whole seconds"},
		{"signed_at offset", set("signed_at", "2026-03-01T12:30:45+01:00"), "is not RFC 3339 UTC"},
		{"signed_at year", set("signed_at", "1970-01-01T00:00:00Z"), "signed_at year 1970 is out of range"},
		{"not canonical: space", withPayload(strings.Replace(goodPayload, `,`, `, `, 1)), "payload is not RFC 8785 canonical JSON"},
		{"not canonical: order", withPayload(`{"v":1,` + strings.TrimSuffix(goodPayload[1:], `,"v":1}`) + `}`), "not RFC 8785 canonical"},
		{"not canonical: escape", withPayload(strings.Replace(goodPayload, `"cod"`, `"\u0063od"`, 1)), "not RFC 8785 canonical"},
		{"not canonical: newline", withPayload(goodPayload + "\n"), "not RFC 8785 canonical"},
	}
	for _, c := range cases {
		_, _, err := ParseCOD(c.in)
		if !errors.Is(err, ErrMalformedCOD) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error = %v\n\twant ErrMalformedCOD containing %q", c.name, err, c.want)
		}
		// Nothing malformed may verify either.
		if _, err := VerifyCOD(c.in, it.pub); err == nil {
			t.Errorf("%s: verifies", c.name)
		}
	}
}

func TestSignCODRefusesInvalidClaims(t *testing.T) {
	it := newTestItem(t)
	bad := map[string]func(c *CODClaims){
		"version":   func(c *CODClaims) { c.V = 0 },
		"type":      func(c *CODClaims) { c.Type = "" },
		"label":     func(c *CODClaims) { c.Label = "x" },
		"hash":      func(c *CODClaims) { c.Hash = "sha256:" },
		"recipient": func(c *CODClaims) { c.Recipient = "" },
		"custody":   func(c *CODClaims) { c.Custody = "" },
		"time":      func(c *CODClaims) { c.SignedAt = time.Time{} },
	}
	for name, edit := range bad {
		c := it.claims(DecisionCOD)
		edit(&c)
		if _, err := SignCOD(it.priv, c); err == nil {
			t.Errorf("%s: signed invalid claims", name)
		}
	}
	if _, err := SignCOD(it.priv[:10], it.claims(DecisionCOD)); err == nil {
		t.Error("signed with a short key")
	}
}

// TestCODNonASCIIRecipient checks that names outside ASCII survive the
// canonical form (RFC 8785 writes them as UTF-8, not \u escapes).
func TestCODNonASCIIRecipient(t *testing.T) {
	it := newTestItem(t)
	c := it.claims(DecisionCOD)
	c.Recipient = "jürgen@例え.jp <&>"
	cod, err := SignCOD(it.priv, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyCOD(cod, it.pub)
	if err != nil {
		t.Fatal(err)
	}
	if got.Recipient != c.Recipient {
		t.Errorf("recipient = %q", got.Recipient)
	}
}
