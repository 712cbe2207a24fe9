package evidence

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/gowebpki/jcs"
)

// headOf decodes a bundle's head without checking it, to build variants.
func headOf(t *testing.T, b *Bundle) BundleHead {
	t.Helper()
	payload, err := payloadWithoutVerification(b.Head)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseHeadPayload(payload)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// resignHead signs h as the gateway of l would.
func resignHead(t *testing.T, l *Log, h BundleHead) string {
	t.Helper()
	jws, err := l.Signer().signHead(h)
	if err != nil {
		t.Fatal(err)
	}
	return jws
}

// mustFailExactly is mustFail for errors whose whole text is the point:
// what a person reads when a head does not match.
func mustFailExactly(t *testing.T, what string, b *Bundle, opts VerifyOptions, want string) {
	t.Helper()
	_, err := Verify(b, opts)
	if err == nil || err.Error() != want {
		t.Errorf("%s: got %v\nwant %s", what, err, want)
	}
}

func TestHeadUntouchedBundleIsComplete(t *testing.T) {
	l, kv, items := buildLog(t)
	for _, it := range items {
		b := bundleFor(t, l, kv, it)
		if b.Version != 2 || b.Head == "" {
			t.Fatalf("%s: version %d, head %q", it.label, b.Version, b.Head)
		}
		v, err := Verify(b, VerifyOptions{GatewayKey: l.Signer().Public()})
		if err != nil {
			t.Fatalf("%s: %v", it.label, err)
		}
		h := headOf(t, b)
		if !v.Complete || !v.HeadIssuedAt.Equal(h.IssuedAt) || v.HeadIssuedAt.IsZero() {
			t.Errorf("%s: complete %v at %v, head issued at %v", it.label, v.Complete, v.HeadIssuedAt, h.IssuedAt)
		}
		want := fmt.Sprintf("Complete: the gateway signed at %s that these are all %d records of the item (log size %d)",
			stamp(h.IssuedAt), len(it.events), v.Checkpoint.Size)
		if !strings.Contains(v.String(), want) {
			t.Errorf("%s: verdict lacks %q:\n%s", it.label, want, v)
		}
	}
}

// TestEveryByteOfTheHeadMatters flips each byte of a head (a sample under
// -short) and expects the verifier to notice every time.
func TestEveryByteOfTheHeadMatters(t *testing.T) {
	l, kv, items := buildLog(t)
	b := bundleFor(t, l, kv, items[2])
	step := 1
	if testing.Short() {
		step = 11
	}
	for pos := 0; pos < len(b.Head); pos += step {
		for _, flip := range []byte{0x01, 0x20} {
			c := *b
			raw := []byte(b.Head)
			raw[pos] ^= flip
			c.Head = string(raw)
			if _, err := Verify(&c, VerifyOptions{}); err == nil {
				t.Fatalf("flipping byte %d of the head with %#x went unnoticed", pos, flip)
			}
		}
	}
}

func TestHeadDroppingTheLastRecordFails(t *testing.T) {
	l, kv, items := buildLog(t)
	b := bundleFor(t, l, kv, items[1]) // forwarded, then released: 6 records
	c := clone(t, b)
	c.Records = c.Records[:len(c.Records)-1]
	mustFailExactly(t, "without its ROD", c, VerifyOptions{GatewayKey: l.Signer().Public()},
		"head: the gateway signed 6 records, the bundle has 5")

	// The refusal is the last record of a refused item; a bundle that
	// stops before it would show the item as merely notified.
	b = bundleFor(t, l, kv, items[2])
	c = clone(t, b)
	c.Records = c.Records[:len(c.Records)-1]
	mustFailExactly(t, "without the refusal", c, VerifyOptions{},
		"head: the gateway signed 3 records, the bundle has 2")
}

func TestHeadDroppedFromAVersion2BundleFails(t *testing.T) {
	l, kv, items := buildLog(t)
	c := clone(t, bundleFor(t, l, kv, items[0]))
	c.Head = ""
	mustFailExactly(t, "no head", c, VerifyOptions{GatewayKey: l.Signer().Public()},
		"head: a version 2 bundle needs the gateway's signed head, and this one has none")
}

func TestHeadOfAnotherItemFails(t *testing.T) {
	l, kv, items := buildLog(t)
	c := clone(t, bundleFor(t, l, kv, items[1]))
	c.Head = bundleFor(t, l, kv, items[0]).Head
	mustFailExactly(t, "other item's head", c, VerifyOptions{GatewayKey: l.Signer().Public()},
		`head: signed for label "L-released", the bundle is for "L-forwarded"`)
}

func TestHeadSignedByAnotherKeyFails(t *testing.T) {
	l, kv, items := buildLog(t)
	c := clone(t, bundleFor(t, l, kv, items[1]))
	// An impostor's head for the same item and gateway name, same records.
	c.Head = forgeBundle(t, items[1]).Head
	want := "head: signed by unknown key"
	mustFail(t, "impostor's head, pinned", c, VerifyOptions{GatewayKey: l.Signer().Public()}, want)
	mustFail(t, "impostor's head, bundle keys", c, VerifyOptions{}, want)
}

func TestHeadTreeSizeOtherThanTheCheckpointsFails(t *testing.T) {
	l, kv, items := buildLog(t)
	c := clone(t, bundleFor(t, l, kv, items[1]))
	h := headOf(t, c)
	h.TreeSize++
	c.Head = resignHead(t, l, h)
	mustFailExactly(t, "tree size", c, VerifyOptions{GatewayKey: l.Signer().Public()},
		fmt.Sprintf("head: signed for log size %d, the bundle's checkpoint has size %d", h.TreeSize, h.TreeSize-1))
}

func TestHeadLastDigestOtherThanTheLastRecordsFails(t *testing.T) {
	l, kv, items := buildLog(t)
	c := clone(t, bundleFor(t, l, kv, items[1]))
	h := headOf(t, c)
	h.Last = RecordDigest("a record the bundle does not show")
	c.Head = resignHead(t, l, h)
	mustFail(t, "last digest", c, VerifyOptions{GatewayKey: l.Signer().Public()},
		"head: the gateway signed "+h.Last+" as the last record, the bundle's last record (5) is ")
}

func TestHeadOfAnotherHashFails(t *testing.T) {
	l, kv, items := buildLog(t)
	c := clone(t, bundleFor(t, l, kv, items[1]))
	h := headOf(t, c)
	h.Hash = items[0].hash
	c.Head = resignHead(t, l, h)
	mustFail(t, "other hash", c, VerifyOptions{GatewayKey: l.Signer().Public()}, "head: signed for hash ")
}

// TestHeadAndRecordCannotStandInForEachOther: the same key signs both, so
// only the typ header keeps them apart.
func TestHeadAndRecordCannotStandInForEachOther(t *testing.T) {
	l, kv, items := buildLog(t)
	b := bundleFor(t, l, kv, items[0])
	pinned := VerifyOptions{GatewayKey: l.Signer().Public()}

	c := clone(t, b)
	c.Head = c.Records[len(c.Records)-1].JWS
	mustFail(t, "record as head", c, pinned, `head: protected header typ "certmail-evidence+jws", want "certmail-head+jws"`)

	c = clone(t, b)
	c.Records[len(c.Records)-1].JWS = c.Head
	mustFail(t, "head as record", c, pinned, `record 3: protected header typ "certmail-head+jws", want "certmail-evidence+jws"`)
}

// TestHeadPayloadIsStrict: a head is read as strictly as a record, so
// that no JSON parser can read another head out of the signed bytes.
func TestHeadPayloadIsStrict(t *testing.T) {
	l, kv, items := buildLog(t)
	b := bundleFor(t, l, kv, items[0])
	h := headOf(t, b)
	good, err := canonicalHead(h)
	if err != nil {
		t.Fatal(err)
	}
	// canon re-sorts the keys after an edit, so the check under test is
	// the one that fails rather than the canonical form.
	canon := func(s string) string {
		out, err := jcs.Transform([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	for _, c := range []struct {
		name    string
		payload string
		want    string
	}{
		{"extra field", canon(strings.Replace(string(good), `{`, `{"extra":1,`, 1)), "head: payload has 8 fields, want 7"},
		{"missing field", strings.Replace(string(good), `"gateway":"`+testGateway+`",`, ``, 1), `head: payload lacks "gateway"`},
		{"field in another case", canon(strings.Replace(string(good), `"label"`, `"Label"`, 1)), `head: payload lacks "label"`},
		{"not canonical", strings.Replace(string(good), `,`, `, `, 1), "head: payload is not RFC 8785 canonical JSON"},
		{"keys out of order", strings.Replace(string(good), `{`, `{"zzz":1,`, 1), "head: payload is not RFC 8785 canonical JSON"},
		{"negative count", strings.Replace(string(good), `"records":4`, `"records":-4`, 1), "head: decoding payload"},
		{"zero count", strings.Replace(string(good), `"records":4`, `"records":0`, 1), "head: records 0, want 1 to"},
		{"fractional size", strings.Replace(string(good), `"tree_size":`, `"tree_size":0.5`, 1), "head: decoding payload"},
	} {
		if c.payload == string(good) {
			t.Fatalf("%s: payload unchanged", c.name)
		}
		jws, err := signCompact(l.Signer().head, []byte(c.payload))
		if err != nil {
			t.Fatal(err)
		}
		bad := clone(t, b)
		bad.Head = jws
		mustFail(t, c.name, bad, VerifyOptions{GatewayKey: l.Signer().Public()}, c.want)
	}
}

// TestVersion1BundleVerifiesWithoutCompleteness: bundles written before
// heads existed still verify, but the verdict says what they cannot show.
func TestVersion1BundleVerifiesWithoutCompleteness(t *testing.T) {
	l, kv, items := buildLog(t)
	c := clone(t, bundleFor(t, l, kv, items[0]))
	c.Version, c.Head = 1, ""
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(`"head"`)) {
		t.Errorf("a version 1 bundle is written with a head field:\n%s", data)
	}
	v1, err := ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(v1, VerifyOptions{GatewayKey: l.Signer().Public(), Message: bytes.NewReader(items[0].message)})
	if err != nil {
		t.Fatal(err)
	}
	if v.Complete || !v.HeadIssuedAt.IsZero() || v.State != StateReleased {
		t.Errorf("complete %v at %v, state %s", v.Complete, v.HeadIssuedAt, v.State)
	}
	want := "Completeness not shown (version 1 bundle without a signed head): records after the last one may exist"
	if !strings.Contains(v.String(), want) {
		t.Errorf("verdict lacks %q:\n%s", want, v)
	}

	// Which is why it matters: cut short, a version 1 bundle still
	// verifies (here as notified, where the item was released). Whoever
	// needs to know the item's whole story must insist on Complete.
	v1.Records = v1.Records[:2]
	v, err = Verify(v1, VerifyOptions{GatewayKey: l.Signer().Public()})
	if err != nil || v.Complete || v.State != StateNotified {
		t.Errorf("cut-short version 1 bundle: %v, %+v", err, v)
	}
}

func TestVersion1BundleWithAHeadFails(t *testing.T) {
	l, kv, items := buildLog(t)
	c := clone(t, bundleFor(t, l, kv, items[0]))
	c.Version = 1
	mustFailExactly(t, "version 1 with head", c, VerifyOptions{},
		"head: bundle version 1 has a head, which only version 2 bundles carry")
}

// TestOlderHeadIsCompleteAsOfItsTime: a bundle made before the item's
// latest record still verifies, as complete as of its head's time. That
// is inherent (the gateway signed the truth then); the verdict shows the
// time, and a newer bundle shows more.
func TestOlderHeadIsCompleteAsOfItsTime(t *testing.T) {
	l, kv, items := buildLog(t)
	it := items[3]
	old := bundleFor(t, l, kv, it)
	if _, err := l.Append(kv, NewOperatorView(it.label, it.hash, "op", "audit")); err != nil {
		t.Fatal(err)
	}
	newer := bundleFor(t, l, kv, it)
	vOld, err := Verify(old, VerifyOptions{GatewayKey: l.Signer().Public()})
	if err != nil {
		t.Fatal(err)
	}
	vNew, err := Verify(newer, VerifyOptions{GatewayKey: l.Signer().Public()})
	if err != nil {
		t.Fatal(err)
	}
	if !vOld.Complete || !vNew.Complete || !vOld.HeadIssuedAt.Before(vNew.HeadIssuedAt) ||
		len(vNew.Events) != len(vOld.Events)+1 {
		t.Errorf("old: complete %v at %v, %d records; new: complete %v at %v, %d records",
			vOld.Complete, vOld.HeadIssuedAt, len(vOld.Events), vNew.Complete, vNew.HeadIssuedAt, len(vNew.Events))
	}
	// But the older head does not vouch for the newer bundle cut back to
	// the older records: it is tied to the older checkpoint.
	c := clone(t, newer)
	c.Records = c.Records[:len(c.Records)-1]
	c.Head = old.Head
	mustFail(t, "old head on a newer bundle", c, VerifyOptions{GatewayKey: l.Signer().Public()}, "head: signed for log size ")
}

// TestHeadIssuedAtIsTheLogsClock: the head is timed by the log's clock,
// like records appended without a time.
func TestHeadIssuedAtIsTheLogsClock(t *testing.T) {
	// Minutes after the scenario's CODs were signed, so they verify.
	at := time.Date(2025, 3, 1, 10, 4, 5, 6, time.FixedZone("x", 3600))
	s, err := NewSigner(testGateway, testKey("gateway"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLog(s, testOrigin, WithClock(func() time.Time { return at }))
	if err != nil {
		t.Fatal(err)
	}
	kv := newKV(t)
	it := scenario(t)[2]
	for _, ev := range it.events {
		if _, err := l.Append(kv, ev); err != nil {
			t.Fatal(err)
		}
	}
	v, err := Verify(bundleFor(t, l, kv, it), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !v.HeadIssuedAt.Equal(at) || v.HeadIssuedAt.Location() != time.UTC {
		t.Errorf("head issued at %v, want %v in UTC", v.HeadIssuedAt, at)
	}
}

// TestHeadVerifiesWithStockJOSE: like a record, a head is an ordinary JWS
// that any JOSE library checks with the gateway's key.
func TestHeadVerifiesWithStockJOSE(t *testing.T) {
	l, kv, items := buildLog(t)
	b := bundleFor(t, l, kv, items[1])
	obj, err := jose.ParseSigned(b.Head, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	h := obj.Signatures[0].Protected
	if h.Algorithm != "EdDSA" || h.KeyID != l.Signer().KeyID() || h.ExtraHeaders["typ"] != HeadJWSType {
		t.Errorf("head header %+v", h)
	}
	payload, err := obj.Verify(l.Signer().Public())
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`"last":"%s","records":6,"tree_size":18}`, RecordDigest(b.Records[5].JWS))
	if !bytes.HasSuffix(payload, []byte(want)) || !bytes.HasPrefix(payload, []byte(`{"gateway":"`+testGateway+`","hash":"`+b.Hash+`","issued_at":"`)) {
		t.Errorf("head payload %s", payload)
	}
}
