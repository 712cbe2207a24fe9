package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

func TestCheckpointIsASignedC2SPNote(t *testing.T) {
	l, kv, _ := buildLog(t)
	cp, err := l.Checkpoint(kv)
	if err != nil {
		t.Fatal(err)
	}
	size, root, _ := Root(kv)

	// A stock note verifier, given only the verifier key, accepts it.
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s\n%d\n%s\n", testOrigin, size, base64.StdEncoding.EncodeToString(root))
	if n.Text != want {
		t.Errorf("checkpoint text %q, want %q", n.Text, want)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != testOrigin {
		t.Errorf("signatures %+v", n.Sigs)
	}

	head, err := ParseCheckpoint(cp, l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if head.Origin != testOrigin || head.Size != size || !bytes.Equal(head.Root, root) {
		t.Errorf("parsed %+v", head)
	}

	again, err := l.Checkpoint(kv)
	if err != nil || !bytes.Equal(again, cp) {
		t.Errorf("second checkpoint of the same size differs (%v)", err)
	}
}

func TestVerifierKeyMatchesNoteSigner(t *testing.T) {
	key := testKey("gateway")
	s, err := newNoteSigner("example.org/log", key)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := VerifierKey("example.org/log", key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if v.KeyHash() != s.KeyHash() || v.Name() != s.Name() {
		t.Errorf("verifier %s/%08x, signer %s/%08x", v.Name(), v.KeyHash(), s.Name(), s.KeyHash())
	}
	if _, err := newNoteSigner("bad name", key); err == nil {
		t.Error("note signer accepted a name with a space")
	}
}

// TestStoredCheckpointsAreConsistent publishes checkpoints as the log
// grows and proves every pair consistent from what is stored.
func TestStoredCheckpointsAreConsistent(t *testing.T) {
	l, kv, items := buildLog(t)
	first, _ := l.Checkpoint(kv)
	it := items[3] // expired: only operator views may follow
	for range 3 {
		if _, err := l.Append(kv, NewOperatorView(it.label, it.hash, "eve", "audit")); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Checkpoint(kv); err != nil {
			t.Fatal(err)
		}
	}
	latest, found, err := LatestCheckpoint(kv)
	if err != nil || !found {
		t.Fatalf("latest checkpoint: %v %v", found, err)
	}
	var heads []TreeHead
	for _, cp := range [][]byte{first, latest} {
		h, err := ParseCheckpoint(cp, l.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, h)
	}
	if heads[1].Size != heads[0].Size+3 {
		t.Fatalf("sizes %d, %d", heads[0].Size, heads[1].Size)
	}
	for s1 := heads[0].Size; s1 <= heads[1].Size; s1++ {
		cp1, found, err := CheckpointAt(kv, s1)
		if err != nil || !found {
			t.Fatalf("checkpoint %d: %v %v", s1, found, err)
		}
		h1, _ := ParseCheckpoint(cp1, l.VerifierKey())
		p, err := ConsistencyProof(kv, h1.Size, heads[1].Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(hasher, h1.Size, heads[1].Size, p, h1.Root, heads[1].Root); err != nil {
			t.Errorf("checkpoint %d -> %d: %v", h1.Size, heads[1].Size, err)
		}
	}
}

func TestParseCheckpointRejects(t *testing.T) {
	l, kv, _ := buildLog(t)
	cp, _ := l.Checkpoint(kv)
	other, _ := NewSigner(testGateway, testKey("other"))
	otherLog, _ := NewLog(other, testOrigin, WithClock(time.Now))
	otherName, _ := NewLog(l.Signer(), "other.example.org/log")

	sign := func(text string) []byte {
		b, err := note.Sign(&note.Note{Text: text}, l.note)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	size, _ := Size(kv)
	n := fmt.Sprint(size)
	cases := map[string]struct {
		note []byte
		vkey string
	}{
		"flipped size":       {bytes.Replace(cp, []byte("\n"+n+"\n"), []byte("\n"+fmt.Sprint(size+1)+"\n"), 1), l.VerifierKey()},
		"other key":          {cp, otherLog.VerifierKey()},
		"other origin key":   {cp, otherName.VerifierKey()},
		"bad vkey":           {cp, "nonsense"},
		"no root":            {sign(testOrigin + "\n" + n + "\n"), l.VerifierKey()},
		"leading zero":       {sign(testOrigin + "\n0" + n + "\n" + root + "\n"), l.VerifierKey()},
		"negative":           {sign(testOrigin + "\n-1\n" + root + "\n"), l.VerifierKey()},
		"short root":         {sign(testOrigin + "\n" + n + "\nAAAA\n"), l.VerifierKey()},
		"origin mismatch":    {sign("elsewhere\n" + n + "\n" + root + "\n"), l.VerifierKey()},
		"too large":          {bytes.Repeat([]byte("x"), maxCheckpointSize+1), l.VerifierKey()},
		"unsigned":           {[]byte(testOrigin + "\n" + n + "\n" + root + "\n"), l.VerifierKey()},
		"root not canonical": {sign(testOrigin + "\n" + n + "\n" + strings.TrimSuffix(root, "=") + "\n"), l.VerifierKey()},
	}
	if bytes.Equal(cases["flipped size"].note, cp) {
		t.Fatal("flipping the size changed nothing")
	}
	for name, tc := range cases {
		if h, err := ParseCheckpoint(tc.note, tc.vkey); err == nil {
			t.Errorf("%s: accepted, %+v", name, h)
		}
	}
	// Extension lines are allowed by C2SP and ignored.
	if _, err := ParseCheckpoint(sign(testOrigin+"\n"+n+"\n"+root+"\nextension\n"), l.VerifierKey()); err != nil {
		t.Errorf("extension line: %v", err)
	}
}
