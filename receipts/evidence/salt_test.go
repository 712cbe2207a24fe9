package evidence

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"certmail/receipts"
)

// TestUnsaltedFixtureVerifies: a bundle the server wrote before
// commitments were salted (an unsalted H(L,M), no commitment version in
// its COP) still verifies, with its message, and says which H it checked.
func TestUnsaltedFixtureVerifies(t *testing.T) {
	dir := filepath.Join("testdata", "unsalted")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := ParseBundle(read("bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := receipts.ParsePublicKeyPEM(read("gateway.pem"))
	if err != nil {
		t.Fatal(err)
	}
	m := read("message.eml")
	v, err := Verify(b, VerifyOptions{GatewayKey: pub, Message: bytes.NewReader(m), RequireComplete: true})
	if err != nil {
		t.Fatalf("the unsalted fixture no longer verifies: %v", err)
	}
	if v.Commitment != receipts.CommitmentUnsalted || v.Salt != "" || !v.MessageChecked || v.State != StateReleased {
		t.Errorf("commitment %d, salt %q, message checked %v, state %s", v.Commitment, v.Salt, v.MessageChecked, v.State)
	}
	if !strings.Contains(v.String(), "The message file matches H(L,M)\n") {
		t.Errorf("verdict:\n%s", v)
	}
	var salt receipts.Salt
	mustFail(t, "salt for an unsalted item", b, VerifyOptions{GatewayKey: pub, Message: bytes.NewReader(m), Salt: &salt},
		"message: the item's H(L,M) is unsalted")
	mustFail(t, "other message", b, VerifyOptions{GatewayKey: pub, Message: bytes.NewReader(append(m, ' '))},
		"message: H(L,M) is ")
}

// TestSaltReleasedWithMessage: a salted item's bundle names the version in
// its COP and releases r in the ROD, so M checks with the bundle alone; a
// wrong r, from the caller or from a gateway that lies, fails; a refused
// item's bundle releases nothing, and M checks only with the sender's r.
func TestSaltReleasedWithMessage(t *testing.T) {
	l, kv, items := buildLog(t)
	pinned := l.Signer().Public()
	released, refused := items[0], items[2]

	b := bundleFor(t, l, kv, released)
	v, err := Verify(b, VerifyOptions{GatewayKey: pinned, Message: bytes.NewReader(released.message)})
	if err != nil {
		t.Fatal(err)
	}
	if v.Commitment != receipts.CommitmentSalted || v.Salt != released.salt.String() || !v.MessageChecked {
		t.Errorf("commitment %d, salt %q, message checked %v", v.Commitment, v.Salt, v.MessageChecked)
	}
	// Without r the commitment is not H(L,M): a guess cannot be tested.
	if receipts.ItemHash(released.label, released.message) == released.hash {
		t.Fatal("the salted commitment equals the unsalted H(L,M)")
	}

	other := receipts.Salt{1}
	mustFail(t, "caller's salt differs from the released one", b,
		VerifyOptions{GatewayKey: pinned, Message: bytes.NewReader(released.message), Salt: &other}, "the salt given is")

	// The salt is signed: editing it in the ROD breaks the record.
	c := clone(t, b)
	last := len(c.Records) - 1
	c.Records[last].JWS = editPayload(t, c.Records[last].JWS, func(p map[string]any) {
		p["data"].(map[string]any)["salt"] = other.String()
	})
	mustFail(t, "salt edited in the ROD", c, VerifyOptions{GatewayKey: pinned}, "record 3: signature")

	// A gateway that signs a wrong r (or a wrong M) is caught by the
	// message check, which is what the recipient runs after release.
	liar := newItem("L-liar")
	liar.events = []Event{
		NewSubmissionAcceptance(liar.label, liar.hash, receipts.CommitmentSalted, "", "bob", time.Date(2025, 3, 8, 9, 0, 0, 0, time.UTC)),
	}
	cod := makeCOD(t, "bob", "cod", liar.label, liar.hash, CustodyRecipientHeld)
	liar.events = append(liar.events,
		NewConsignmentAcceptance(liar.label, liar.hash, cod, "bob", CustodyRecipientHeld),
		NewContentHandover(liar.label, liar.hash, cod, "bob", other.String()))
	for _, ev := range liar.events {
		if _, err := l.Append(kv, ev); err != nil {
			t.Fatal(err)
		}
	}
	lb, err := l.BuildBundle(kv, liar.label, partyKey(t, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(lb, VerifyOptions{GatewayKey: pinned}); err != nil {
		t.Fatalf("without the message the lie is not visible: %v", err)
	}
	mustFail(t, "gateway released a wrong salt", lb,
		VerifyOptions{GatewayKey: pinned, Message: bytes.NewReader(liar.message)}, "message: H(L,r,M) is ")

	rb := bundleFor(t, l, kv, refused)
	if bytes.Contains([]byte(strings.Join(recordsOf(rb), "")), []byte(refused.salt.String())) {
		t.Error("a refused item's records carry its salt")
	}
	mustFail(t, "refused item without the sender's salt", rb,
		VerifyOptions{GatewayKey: pinned, Message: bytes.NewReader(refused.message)}, "releases no salt")
	mustFail(t, "refused item with a wrong salt", rb,
		VerifyOptions{GatewayKey: pinned, Message: bytes.NewReader(refused.message), Salt: &other}, "message: H(L,r,M) is ")
	if _, err := Verify(rb, VerifyOptions{GatewayKey: pinned, Message: bytes.NewReader(refused.message), Salt: &refused.salt}); err != nil {
		t.Errorf("refused item with the sender's salt: %v", err)
	}
}

// TestCODSignedOutsideTheItemsLife: a COD dated before its item was
// posted, after its deadline, or after the gateway recorded it says
// something false, and the verifier refuses it instead of printing it;
// within the clock tolerance it passes.
func TestCODSignedOutsideTheItemsLife(t *testing.T) {
	posted := time.Date(2025, 3, 1, 9, 0, 1, 0, time.UTC) // fixedClock's first tick
	deadline := posted.Add(2 * time.Hour)
	tol := receipts.CODClockTolerance
	for _, c := range []struct {
		name     string
		signedAt time.Time
		want     string // "" verifies
	}{
		{"a year before posting", posted.AddDate(-1, 0, 0), "before the item was posted"},
		{"just beyond the tolerance before posting", posted.Add(-tol - time.Second), "before the item was posted"},
		{"within the tolerance before posting", posted.Add(-tol + time.Second), ""},
		{"after the deadline", deadline.Add(tol + time.Second), "after the deadline"},
		{"after the gateway recorded it", posted.Add(time.Hour), "after the gateway received it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newTestLog(t) // its clock: posted, then a second per record
			kv := newKV(t)
			it := newItem("L-time")
			cod := makeCODAt(t, "bob", "cod", it.label, it.hash, CustodyRecipientHeld, c.signedAt.Format(time.RFC3339))
			for _, ev := range []Event{
				NewSubmissionAcceptance(it.label, it.hash, receipts.CommitmentSalted, "", "bob", deadline),
				NewConsignmentAcceptance(it.label, it.hash, cod, "bob", CustodyRecipientHeld),
				NewContentHandover(it.label, it.hash, cod, "bob", it.salt.String()),
			} {
				if _, err := l.Append(kv, ev); err != nil {
					t.Fatal(err)
				}
			}
			b, err := l.BuildBundle(kv, it.label, partyKey(t, "bob"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Verify(b, VerifyOptions{GatewayKey: l.Signer().Public(), Message: bytes.NewReader(it.message)})
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("a COD signed at %s verified", c.signedAt)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func recordsOf(b *Bundle) []string {
	var out []string
	for _, r := range b.Records {
		out = append(out, r.JWS)
	}
	return out
}

// editPayload rewrites a compact JWS's payload, keeping its header and
// signature (which then no longer verifies).
func editPayload(t *testing.T, jws string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(jws, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	edit(p)
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(out)
	return strings.Join(parts, ".")
}
