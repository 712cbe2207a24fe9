package evidence

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/gowebpki/jcs"

	"certmail/kv"
	"certmail/kv/testengine"
	"certmail/mailbox"
	"certmail/receipts"
)

// engines is the engine the suite runs on: Badger, or PostgreSQL with
// CERTMAIL_TEST_ENGINE=postgres (kv/testengine). The log lives in a
// mailbox store's records on it, as in the server.
var engines testengine.Engines

func TestMain(m *testing.M) { os.Exit(engines.Main(m)) }

// newStore opens a mailbox store on the suite's engine and returns its
// records, where the log lives in the server.
func newStore(t testing.TB) kv.RecordStore {
	t.Helper()
	s, err := mailbox.Open(mailbox.Options{Dir: t.TempDir(), Engine: engines.Open(t), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Records()
}

// autoRecords is kv.Records on a store, each call a transaction of its
// own: the tests that append and read a log step by step see what each
// step committed.
type autoRecords struct{ rs kv.RecordStore }

func (a autoRecords) Get(key []byte) (v []byte, found bool, err error) {
	err = a.rs.View(func(r kv.Records) error {
		v, found, err = r.Get(key)
		return err
	})
	return v, found, err
}

func (a autoRecords) GetMany(keys [][]byte, fn func(i int, value []byte) error) error {
	return a.rs.View(func(r kv.Records) error { return r.GetMany(keys, fn) })
}

func (a autoRecords) Set(key, value []byte) error {
	return a.rs.Update(func(r kv.Records) error { return r.Set(key, value) })
}

func (a autoRecords) Delete(key []byte) error {
	return a.rs.Update(func(r kv.Records) error { return r.Delete(key) })
}

func (a autoRecords) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return a.rs.View(func(r kv.Records) error { return r.Scan(prefix, fn) })
}

// newKV returns empty records on the suite's engine.
func newKV(t testing.TB) kv.Records { return autoRecords{newStore(t)} }

const (
	testGateway = "mx.example.org"
	testOrigin  = "mx.example.org/certmail/evidence"
)

// testKey derives a fixed Ed25519 key from a name, so runs are repeatable.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("certmail evidence test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// fixedClock ticks one second per call, from a fixed start.
func fixedClock() func() time.Time {
	t := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	return func() time.Time {
		t = t.Add(time.Second)
		return t
	}
}

func newTestLog(t testing.TB) *Log {
	t.Helper()
	s, err := NewSigner(testGateway, testKey("gateway"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLog(s, testOrigin, WithClock(fixedClock()))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func partyKey(t testing.TB, name string) PartyKey {
	t.Helper()
	pk, err := NewPartyKey(name, testKey(name).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

// makeCOD signs a COD or refusal as the receipts package does, with a
// stock JOSE signer, so the verifier is checked against an independent
// producer.
func makeCOD(t testing.TB, signer, typ, label string, hash [32]byte, custody string) string {
	t.Helper()
	// Within minutes of fixedClock's posting times, as a real COD is.
	return makeCODAt(t, signer, typ, label, hash, custody, "2025-03-01T09:00:00Z")
}

// makeCODAt is makeCOD with the signed_at given.
func makeCODAt(t testing.TB, signer, typ, label string, hash [32]byte, custody, signedAt string) string {
	t.Helper()
	key := testKey(signer)
	kid, err := KeyID(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(map[string]any{
		"v": 1, "type": typ, "gateway": testGateway, "label": label,
		"hash": receipts.FormatHash(hash), "recipient": signer, "custody": custody,
		"signed_at": signedAt,
	})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jcs.Transform(raw)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(CODJWSType))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := js.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// item is one certified item of the test scenario.
type item struct {
	label   string
	message []byte
	salt    receipts.Salt
	hash    [32]byte // H(L,r,M)
	events  []Event
	state   State
	parties []PartyKey
}

func newItem(label string) *item {
	m := []byte(fmt.Sprintf("From: alice@example.com\r\nSubject: %s\r\n\r\nBody of %s.\r\n", label, label))
	salt := receipts.Salt(sha256.Sum256([]byte("salt of " + label))) // fixed, so runs repeat
	return &item{label: label, message: m, salt: salt, hash: receipts.SaltedItemHash(label, salt, m)}
}

// scenario builds items that go through every kind of event: released
// with the recipient's own key, forwarded and released by an alternate
// with a gateway-held key, refused, and expired after an operator's look.
func scenario(t testing.TB) []*item {
	t.Helper()
	deadline := time.Date(2025, 3, 8, 9, 0, 0, 0, time.UTC)
	post := func(it *item, rcpt string) {
		it.events = append(it.events,
			NewSubmissionAcceptance(it.label, it.hash, receipts.CommitmentSalted, "alice@example.com", rcpt, deadline),
			NewConsignmentNotification(it.label, it.hash, rcpt))
	}

	released := newItem("L-released")
	post(released, "bob")
	cod := makeCOD(t, "bob", "cod", released.label, released.hash, CustodyRecipientHeld)
	released.events = append(released.events,
		NewConsignmentAcceptance(released.label, released.hash, cod, "bob", CustodyRecipientHeld),
		NewContentHandover(released.label, released.hash, cod, "bob", released.salt.String()))
	released.state = StateReleased
	released.parties = []PartyKey{partyKey(t, "bob")}

	forwarded := newItem("L-forwarded")
	post(forwarded, "bob")
	cod = makeCOD(t, "desk", "cod", forwarded.label, forwarded.hash, CustodyGatewayHeld)
	forwarded.events = append(forwarded.events,
		NewForwarded(forwarded.label, forwarded.hash, "bob", "desk", "policy:shared-desk", "unread for 48h"),
		NewConsignmentNotification(forwarded.label, forwarded.hash, "desk"),
		NewConsignmentAcceptance(forwarded.label, forwarded.hash, cod, "desk", CustodyGatewayHeld),
		NewContentHandover(forwarded.label, forwarded.hash, cod, "desk", forwarded.salt.String()))
	forwarded.state = StateReleased
	forwarded.parties = []PartyKey{partyKey(t, "bob"), partyKey(t, "desk")}

	refused := newItem("L-refused")
	post(refused, "carol")
	refusal := makeCOD(t, "carol", "refusal", refused.label, refused.hash, CustodyRecipientHeld)
	refused.events = append(refused.events,
		NewConsignmentRejection(refused.label, refused.hash, refusal, "carol", CustodyRecipientHeld, "not mine"))
	refused.state = StateRefused
	refused.parties = []PartyKey{partyKey(t, "carol")}

	expired := newItem("L-expired")
	post(expired, "dave")
	expired.events = append(expired.events,
		NewOperatorView(expired.label, expired.hash, "eve", "unread report"),
		NewOperatorForward(expired.label, expired.hash, "eve", "desk", "dave is away"),
		NewContentConsignmentFailure(expired.label, expired.hash, deadline, "non-delivery"))
	expired.state = StateExpired

	return []*item{released, forwarded, refused, expired}
}

// buildLog appends the scenario's events round-robin, so items' records
// interleave in the log.
func buildLog(t testing.TB) (*Log, kv.Records, []*item) {
	t.Helper()
	l := newTestLog(t)
	kv := newKV(t)
	items := scenario(t)
	for round := 0; ; round++ {
		appended := false
		for _, it := range items {
			if round < len(it.events) {
				if _, err := l.Append(kv, it.events[round]); err != nil {
					t.Fatalf("append %s round %d: %v", it.label, round, err)
				}
				appended = true
			}
		}
		if !appended {
			return l, kv, items
		}
	}
}
