package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// clone deep-copies a bundle through its JSON form.
func clone(t *testing.T, b *Bundle) *Bundle {
	t.Helper()
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var c Bundle
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func mustFail(t *testing.T, what string, b *Bundle, opts VerifyOptions, want string) {
	t.Helper()
	_, err := Verify(b, opts)
	if err == nil {
		t.Errorf("%s: verified", what)
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %q does not mention %q", what, err, want)
	}
}

// TestEveryByteOfARecordMatters flips each byte of the COP, and a sample
// of the bytes of every other record, and expects the verifier to notice
// every time. (Bytes of the COP are the cheapest to check exhaustively:
// the verifier stops at the first record.)
func TestEveryByteOfARecordMatters(t *testing.T) {
	l, kv, items := buildLog(t)
	b := bundleFor(t, l, kv, items[1])
	for i := range b.Records {
		jws := b.Records[i].JWS
		step := 1
		if i != 0 || testing.Short() {
			step = 13
		}
		for pos := 0; pos < len(jws); pos += step {
			for _, flip := range []byte{0x01, 0x20} {
				c := *b
				c.Records = slices.Clone(b.Records)
				raw := []byte(jws)
				raw[pos] ^= flip
				c.Records[i].JWS = string(raw)
				if _, err := Verify(&c, VerifyOptions{}); err == nil {
					t.Fatalf("record %d: flipping byte %d with %#x went unnoticed", i, pos, flip)
				}
			}
		}
	}
}

func TestTamperingIsDetected(t *testing.T) {
	l, kv, items := buildLog(t)
	it := items[1]
	b := bundleFor(t, l, kv, it)
	other := bundleFor(t, l, kv, items[0])
	pinned := VerifyOptions{GatewayKey: l.Signer().Public()}

	c := clone(t, b)
	c.Records[1], c.Records[2] = c.Records[2], c.Records[1]
	mustFail(t, "reordered", c, pinned, "record 1 (Forwarded): seq 2, want 1")

	c = clone(t, b)
	c.Records = append(c.Records[:2], c.Records[3:]...)
	mustFail(t, "dropped", c, pinned, "record 2 (ConsignmentNotification): seq 3, want 2")

	c = clone(t, b)
	c.Records = c.Records[1:]
	mustFail(t, "dropped COP", c, pinned, "record 0 (ConsignmentNotification): seq 1, want 0")

	c = clone(t, b)
	c.Records[4] = other.Records[2]
	mustFail(t, "other item's record", c, pinned, `record 4 (ConsignmentAcceptance): label "L-released"`)

	c = clone(t, b)
	c.Label, c.Hash = other.Label, other.Hash
	mustFail(t, "relabelled bundle", c, pinned, `record 0 (SubmissionAcceptance): label "L-forwarded"`)

	c = clone(t, b)
	c.Records[2].LeafIndex++
	mustFail(t, "wrong leaf index", c, pinned, "record 2 (Forwarded): not in the checkpoint's tree")

	c = clone(t, b)
	c.Records[2].InclusionProof[0][0] ^= 1
	mustFail(t, "bad proof", c, pinned, "record 2 (Forwarded): not in the checkpoint's tree")

	c = clone(t, b)
	c.Records[2].InclusionProof = c.Records[2].InclusionProof[1:]
	mustFail(t, "short proof", c, pinned, "record 2 (Forwarded): not in the checkpoint's tree")

	c = clone(t, b)
	c.Checkpoint = strings.Replace(c.Checkpoint, "\n18\n", "\n19\n", 1)
	mustFail(t, "checkpoint size", c, pinned, "checkpoint signature")

	c = clone(t, b)
	lines := strings.SplitN(c.Checkpoint, "\n", 4)
	root := []byte(lines[2])
	root[3] ^= 1
	lines[2] = string(root)
	c.Checkpoint = strings.Join(lines, "\n")
	mustFail(t, "checkpoint root", c, pinned, "checkpoint signature")

	c = clone(t, b)
	c.Checkpoint = other.Checkpoint[:len(other.Checkpoint)-10] + "AAAAAAAAA\n"
	mustFail(t, "checkpoint signature", c, pinned, "checkpoint signature")

	wrong := VerifyOptions{GatewayKey: testKey("impostor").Public().(ed25519.PublicKey)}
	mustFail(t, "wrong pinned key", b, wrong, "not a trusted gateway key")

	// An impostor who re-signs everything with its own key passes only if
	// the verifier trusts the bundle's keys; a pinned key stops it.
	forged := forgeBundle(t, it)
	if _, err := Verify(forged, VerifyOptions{}); err != nil {
		t.Fatalf("forged bundle should be self-consistent: %v", err)
	}
	mustFail(t, "forged, pinned", forged, pinned, "not a trusted gateway key")

	c = clone(t, b)
	c.NoteVerifierKey = forged.NoteVerifierKey
	mustFail(t, "foreign note key", c, VerifyOptions{}, "not a trusted gateway key")

	mustFail(t, "wrong message", b, VerifyOptions{Message: bytes.NewReader(items[0].message)}, "message: H(L,r,M) is")
	tampered := bytes.Replace(it.message, []byte("Body"), []byte("body"), 1)
	mustFail(t, "edited message", b, VerifyOptions{Message: bytes.NewReader(tampered)}, "message: H(L,r,M) is")

	c = clone(t, b)
	c.Version = 3
	mustFail(t, "version", c, pinned, "bundle version 3, want 2 (or 1, without a signed head)")

	c = clone(t, b)
	c.Records[4].JWS = c.Records[4].JWS[:len(c.Records[4].JWS)-1]
	mustFail(t, "truncated signature", c, pinned, "record 4")
}

// forgeBundle makes the bundle an impostor gateway with its own key would
// make for the item.
func forgeBundle(t *testing.T, it *item) *Bundle {
	t.Helper()
	s, err := NewSigner(testGateway, testKey("impostor"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLog(s, testOrigin, WithClock(fixedClock()))
	if err != nil {
		t.Fatal(err)
	}
	kv := newKV(t)
	for _, ev := range it.events {
		if _, err := l.Append(kv, ev); err != nil {
			t.Fatal(err)
		}
	}
	b, err := l.BuildBundle(kv, it.label, it.parties...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
