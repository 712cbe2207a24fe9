package evidence

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"certmail/receipts"
)

// FuzzParseBundle: parsing and verifying any input must return, never
// panic, and never verify something that is not a faithful bundle.
//
// Bundles are kilobytes and each run checks signatures, so minimising an
// interesting input takes the default minute; fuzz with
// -fuzzminimizetime=1s or the fuzzer spends its time minimising.
func FuzzParseBundle(f *testing.F) {
	l, kv, items := buildLog(f)
	for _, it := range items {
		b := bundleFor(f, l, kv, it)
		for _, variant := range []*Bundle{b, withoutHead(b), cutShort(b)} {
			data, err := variant.Marshal()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	pinned := l.Signer().Public()
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		v, err := Verify(b, VerifyOptions{})
		if err != nil {
			return
		}
		if v.State == "" || len(v.Events) != len(b.Records) {
			t.Fatalf("verified with an incomplete verdict: %+v", v)
		}
		// Complete only with a head, and a head only in a version 2
		// bundle (so only there can completeness be claimed).
		if v.Complete != (b.Version == 2) || v.Complete != (b.Head != "") || v.Complete == v.HeadIssuedAt.IsZero() {
			t.Fatalf("version %d bundle, head %q, verified as complete %v at %v", b.Version, b.Head, v.Complete, v.HeadIssuedAt)
		}
		if v, err := Verify(b, VerifyOptions{GatewayKey: pinned, Message: strings.NewReader("M")}); err == nil {
			t.Fatalf("verified a bundle whose message cannot match: %+v", v)
		}
	})
}

// withoutHead is b as a version 1 bundle: no head.
func withoutHead(b *Bundle) *Bundle {
	c := *b
	c.Version, c.Head = 1, ""
	return &c
}

// cutShort is b without its last record, which its head must catch.
func cutShort(b *Bundle) *Bundle {
	c := *b
	c.Records = c.Records[:len(c.Records)-1]
	return &c
}

// FuzzParseCheckpoint: a checkpoint, signed or not, must parse or fail
// cleanly; and whatever parses must be the text the log would write.
func FuzzParseCheckpoint(f *testing.F) {
	l, kv, _ := buildLog(f)
	cp, err := l.Checkpoint(kv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp)
	vkey := l.VerifierKey()
	f.Fuzz(func(t *testing.T, data []byte) {
		if head, err := ParseCheckpoint(data, vkey); err == nil && head.Origin != testOrigin {
			t.Fatalf("origin %q accepted", head.Origin)
		}
		// Sign the input as a checkpoint body, to reach the text parser
		// past the signature check.
		signed, err := note.Sign(&note.Note{Text: string(data)}, l.note)
		if err != nil {
			return
		}
		head, err := ParseCheckpoint(signed, vkey)
		if err != nil {
			return
		}
		if !strings.HasPrefix(string(data), checkpointText(head.Origin, head.Size, head.Root)) {
			t.Fatalf("%q parsed as %+v", data, head)
		}
	})
}

// TestWriteFuzzSeeds regenerates the committed seed corpus when
// CERTMAIL_WRITE_FUZZ_SEEDS is set; it keeps the seeds' provenance in the
// code rather than in someone's shell history.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("CERTMAIL_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set CERTMAIL_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	l, kv, items := buildLog(t)
	var bundles [][]byte
	marshal := func(b *Bundle) []byte {
		data, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	var built []*Bundle
	for _, it := range items {
		b := bundleFor(t, l, kv, it)
		built = append(built, b)
		bundles = append(bundles, marshal(b))
	}
	valid := bundles[1]
	small := newItem("L-posted")
	deadline := time.Date(2025, 3, 8, 9, 0, 0, 0, time.UTC)
	if _, err := l.Append(kv, NewSubmissionAcceptance(small.label, small.hash, receipts.CommitmentUnsalted, "", "bob", deadline)); err != nil {
		t.Fatal(err)
	}
	data, err := bundleFor(t, l, kv, small).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bundles = append(bundles, data)
	bundles = append(bundles,
		[]byte(`{}`),
		[]byte(`{"version":1,"label":"L","hash":"sha256:00","records":[{"jws":"a.b.c","leaf_index":18446744073709551615,"inclusion_proof":["AA=="]}]}`),
		bytes.Replace(valid, []byte(`"leaf_index": 1,`), []byte(`"leaf_index": 99999999999,`), 1),
		bytes.Replace(valid, []byte(`"version": 2`), []byte(`"version": 1.5`), 1),
		[]byte(strings.Replace(string(valid), `"parties": [`, `"parties": [{"name":"x","jwk":{"kty":"OKP","crv":"Ed25519","x":"","kid":""}},`, 1)),
		// The signed head: absent (version 1, as bundles were before
		// heads), kept on a bundle cut short, another item's, and a
		// version 1 bundle that carries one.
		marshal(withoutHead(built[1])),
		marshal(cutShort(built[1])),
		marshal(withoutHead(cutShort(built[2]))),
		func() []byte { c := *built[1]; c.Head = built[0].Head; return marshal(&c) }(),
		func() []byte { c := *built[1]; c.Version = 1; return marshal(&c) }(),
	)
	writeSeeds(t, "FuzzParseBundle", bundles)

	cp, err := l.Checkpoint(kv)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ := strings.Cut(string(cp), "\n\n")
	writeSeeds(t, "FuzzParseCheckpoint", [][]byte{
		cp,
		[]byte(text + "\n"),
		[]byte(text + "\nextension line\n"),
		[]byte(testOrigin + "\n007\nAAAA\n"),
		[]byte("\n\n\n"),
		[]byte(testOrigin + "\n18446744073709551616\n" + strings.Repeat("A", 43) + "=\n"),
	})
}

func writeSeeds(t *testing.T, name string, seeds [][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
