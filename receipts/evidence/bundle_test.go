package evidence

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"certmail/kv"
)

// bundleFor builds, marshals and re-parses an item's bundle, as a file
// handed to a verifier would be.
func bundleFor(t testing.TB, l *Log, kv kv.Records, it *item) *Bundle {
	t.Helper()
	b, err := l.BuildBundle(kv, it.label, it.parties...)
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

func TestBundlesVerify(t *testing.T) {
	l, kv, items := buildLog(t)
	for _, it := range items {
		b := bundleFor(t, l, kv, it)
		v, err := Verify(b, VerifyOptions{
			GatewayKey: l.Signer().Public(),
			Message:    bytes.NewReader(it.message),
			// The sender's copy of r: the bundles of released items
			// carry it too, the others do not.
			Salt: &it.salt,
		})
		if err != nil {
			t.Fatalf("%s: %v", it.label, err)
		}
		if v.State != it.state || !v.MessageChecked || len(v.Events) != len(it.events) {
			t.Errorf("%s: state %s, message checked %v, %d events", it.label, v.State, v.MessageChecked, len(v.Events))
		}
		t.Logf("%s", v)
		// Without a pinned key the bundle's own keys are used.
		if _, err := Verify(b, VerifyOptions{}); err != nil {
			t.Errorf("%s without pinned key: %v", it.label, err)
		}
	}
}

// TestBundleReusesCoveringCheckpoint: a bundle does not publish a new
// checkpoint when a stored one already holds the item's records.
func TestBundleReusesCoveringCheckpoint(t *testing.T) {
	l, kv, items := buildLog(t)
	first := bundleFor(t, l, kv, items[0])
	if _, err := l.Append(kv, NewOperatorView(items[3].label, items[3].hash, "op", "")); err != nil {
		t.Fatal(err)
	}
	again := bundleFor(t, l, kv, items[0])
	if again.Checkpoint != first.Checkpoint {
		t.Error("a new checkpoint was published though the old one covers the item")
	}
	grown := bundleFor(t, l, kv, items[3])
	if grown.Checkpoint == first.Checkpoint {
		t.Error("the bundle's checkpoint does not cover the item's newest record")
	}
	if _, err := Verify(grown, VerifyOptions{}); err != nil {
		t.Error(err)
	}
}

func TestBuildBundleUnknownLabel(t *testing.T) {
	l, kv, _ := buildLog(t)
	if _, err := l.BuildBundle(kv, "L-nothing"); err == nil {
		t.Error("bundle for an unknown label")
	}
}

// TestRecordsVerifyWithStockJOSE: evidence must be checkable without
// certmail, with any JOSE library and the gateway's public key.
func TestRecordsVerifyWithStockJOSE(t *testing.T) {
	l, kv, items := buildLog(t)
	b := bundleFor(t, l, kv, items[1])
	for i, r := range b.Records {
		obj, err := jose.ParseSigned(r.JWS, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		h := obj.Signatures[0].Protected
		if h.Algorithm != "EdDSA" || h.KeyID != l.Signer().KeyID() || h.ExtraHeaders["typ"] != RecordJWSType {
			t.Errorf("record %d header %+v", i, h)
		}
		pub, err := b.GatewayKeys[0].PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		payload, err := obj.Verify(pub)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !bytes.Contains(payload, []byte(`"label":"`+items[1].label+`"`)) {
			t.Errorf("record %d payload %s", i, payload)
		}
		// And the JWK in the bundle is one go-jose reads as such.
		var jwk jose.JSONWebKey
		raw := `{"kty":"OKP","crv":"Ed25519","x":"` + b.GatewayKeys[0].X + `","kid":"` + b.GatewayKeys[0].Kid + `"}`
		if err := jwk.UnmarshalJSON([]byte(raw)); err != nil || !jwk.Key.(ed25519.PublicKey).Equal(pub) {
			t.Errorf("go-jose reads the JWK as %v (%v)", jwk.Key, err)
		}
	}
}

func TestParseBundleRejectsUnknownFieldsAndTrailingData(t *testing.T) {
	l, kv, items := buildLog(t)
	data, _ := bundleFor(t, l, kv, items[0]).Marshal()
	if _, err := ParseBundle(bytes.Replace(data, []byte(`"version"`), []byte(`"extra":1,"version"`), 1)); err == nil {
		t.Error("unknown field accepted")
	}
	if _, err := ParseBundle(append(data, "{}"...)); err == nil {
		t.Error("trailing data accepted")
	}
}

func TestVerifyErrorsNameWhatFailed(t *testing.T) {
	l, kv, items := buildLog(t)
	b := bundleFor(t, l, kv, items[0])
	// Replace record 3 (the ROD) by the ROD of another item re-signed with
	// this item's label but its own prev: the chain breaks at record 3.
	other := bundleFor(t, l, kv, items[1])
	b.Records[3] = other.Records[5]
	_, err := Verify(b, VerifyOptions{})
	want := `record 3 (ContentHandover): label "L-forwarded", the bundle is for "L-released"`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}

	// A record re-signed by the gateway with a wrong prev.
	b = bundleFor(t, l, kv, items[0])
	r, err := Entry{JWS: b.Records[3].JWS}.Record()
	if err != nil {
		t.Fatal(err)
	}
	r.Prev = RecordDigest("something else")
	b.Records[3].JWS, err = l.Signer().signRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(b, VerifyOptions{})
	want = "record 3 (ContentHandover): prev hash does not match record 2"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestVerifyChecksCODs(t *testing.T) {
	l, kv, items := buildLog(t)
	it := items[0]
	cases := map[string]struct {
		parties []PartyKey
		want    string
	}{
		"no recipient key": {nil, `signed by unknown key`},
		"key under another name": {[]PartyKey{func() PartyKey {
			p := partyKey(t, "bob")
			p.Name = "mallory"
			return p
		}()}, `names recipient "bob" but is signed by "mallory"'s key`},
		"wrong key": {[]PartyKey{func() PartyKey {
			p := partyKey(t, "bob")
			p.JWK = partyKey(t, "mallory").JWK
			p.JWK.Kid = partyKey(t, "bob").JWK.Kid
			return p
		}()}, `kid is not the key's thumbprint`},
	}
	for name, tc := range cases {
		b, err := l.BuildBundle(kv, it.label, tc.parties...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(b, VerifyOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}

	// A COD for another item, recorded by a careless gateway, is caught.
	kv2 := newKV(t)
	otherCOD := makeCOD(t, "bob", "cod", "L-other", it.hash, CustodyRecipientHeld)
	for _, ev := range []Event{it.events[0], NewConsignmentAcceptance(it.label, it.hash, otherCOD, "bob", "")} {
		if _, err := l.Append(kv2, ev); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := l.BuildBundle(kv2, it.label, it.parties...)
	_, err := Verify(b, VerifyOptions{})
	if want := `record 1 (ConsignmentAcceptance): cod names label "L-other", not "L-released"`; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
