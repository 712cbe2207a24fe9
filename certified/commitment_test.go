package certified_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"io"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"certmail/certified"
	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

// verdicts are the messages a court's template can produce: a recipient
// who can test each against the stub's hash knows the verdict before
// deciding whether to acknowledge it.
var verdicts = []string{"The claim is dismissed.", "The claim is upheld.", "The hearing is adjourned."}

func verdictMessage(v string) []byte {
	return []byte("From: Court Clerk <clerk@court.example>\r\nTo: alice@example.org\r\nSubject: Decision in case 4711\r\n" +
		"Message-ID: <decision-4711@court.example>\r\n\r\n" + v + "\r\n")
}

// fetchRaw returns the whole of message seq in the selected mailbox.
func fetchRaw(t *testing.T, c *imapclient.Client, seq uint32) []byte {
	t.Helper()
	msgs := fetchAll(t, c, imap.SeqSetNum(seq), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
		t.Fatalf("fetching message %d: %d messages", seq, len(msgs))
	}
	return msgs[0].BodySection[0].Bytes
}

var hashInStub = regexp.MustCompile(`(?m)^Certified-Hash: (sha256:[0-9a-f]{64})\r?$`)

// TestStubCommitmentHidesTemplatedM is CEM-ip's "no selective receipt"
// against a recipient who can list the possible messages: the stub B sees
// before signing shows a commitment that none of the candidates hashes to,
// and nothing in it (the salt in any encoding) lets B compute one that
// does. Once B acknowledges, M and r are released together and B can
// check M against the hash it signed, with the receipt and M alone, and
// with the evidence bundle; a changed r or M fails.
func TestStubCommitmentHidesTemplatedM(t *testing.T) {
	e := newEnv(t)
	m := verdictMessage(verdicts[0])
	var it *certified.Item
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		var err error
		it, err = e.svc.Post(tx, certified.PostRequest{Raw: m, Sender: "clerk@court.example", Recipient: "alice",
			Spec: certified.Spec{Reveal: certified.RevealSenderSubject}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	salt, err := receipts.ParseSalt(it.Salt)
	if err != nil {
		t.Fatalf("the item holds no salt: %v", err)
	}

	// What B sees before signing: the stub, over IMAP.
	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	stub := fetchRaw(t, c, 1)
	match := hashInStub.FindSubmatch(stub)
	if match == nil {
		t.Fatalf("no Certified-Hash in the stub:\n%s", stub)
	}
	shown, err := receipts.ParseHash(string(match[1]))
	if err != nil {
		t.Fatal(err)
	}
	if shown != it.HashBytes() {
		t.Fatalf("the stub shows %s, the item's commitment is %s", match[1], it.Hash)
	}
	for _, v := range verdicts {
		if receipts.ItemHash(it.Label, verdictMessage(v)) == shown {
			t.Fatalf("the stub's hash is H(L,M) of %q: a recipient can test candidate messages", v)
		}
	}
	for _, enc := range []string{it.Salt, strings.ToUpper(it.Salt), base64.StdEncoding.EncodeToString(salt[:]),
		base64.RawStdEncoding.EncodeToString(salt[:]), base64.RawURLEncoding.EncodeToString(salt[:]), string(salt[:])} {
		if bytes.Contains(stub, []byte(enc)) {
			t.Fatalf("the stub carries the salt (%q): B could test candidates", enc)
		}
	}
	for _, crit := range []imap.SearchCriteria{{Text: []string{it.Salt}}, {Text: []string{it.Salt[:16]}}} {
		if res, err := c.Search(&crit, nil).Wait(); err != nil || len(res.AllSeqNums()) != 0 {
			t.Fatalf("SEARCH for the salt finds something (%v): it leaks", err)
		}
	}
	// With r, and only with it, the right candidate shows.
	if receipts.SaltedItemHash(it.Label, salt, m) != shown {
		t.Fatal("H(L,r,M) with the held salt is not the stub's hash")
	}

	// B acknowledges; M and r are released together.
	if _, err := c.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	released := fetchRaw(t, c, 1)
	if !bytes.Equal(released, m) {
		t.Fatalf("the released copy is not M:\n%s", released)
	}
	if _, err := c.Select(certified.AckMailbox, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	receipt, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(fetchRaw(t, c, 1))))
	if err != nil {
		t.Fatal(err)
	}
	rm := regexp.MustCompile(`Salt r = ([0-9a-f]{64})`).FindSubmatch(receipt)
	if rm == nil {
		t.Fatalf("the receipt does not release the salt:\n%s", receipt)
	}
	got, err := receipts.ParseSalt(string(rm[1]))
	if err != nil {
		t.Fatal(err)
	}
	if receipts.SaltedItemHash(it.Label, got, released) != shown {
		t.Fatal("the released M and r do not hash to what the stub showed")
	}
	flipped := got
	flipped[0] ^= 1
	if receipts.SaltedItemHash(it.Label, flipped, released) == shown {
		t.Fatal("a changed salt still matches")
	}
	if receipts.SaltedItemHash(it.Label, got, verdictMessage(verdicts[1])) == shown {
		t.Fatal("another verdict matches")
	}

	// The evidence releases r too: the bundle checks M with no salt given,
	// and refuses a changed M or r.
	b, err := e.svc.Bundle(it.Label)
	if err != nil {
		t.Fatal(err)
	}
	pinned := e.gwKey.Public().(ed25519.PublicKey)
	v, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: pinned, Message: bytes.NewReader(released)})
	if err != nil {
		t.Fatal(err)
	}
	if v.Salt != it.Salt || v.Commitment != receipts.CommitmentSalted || !v.MessageChecked {
		t.Fatalf("verdict: salt %q, commitment %d, message checked %v", v.Salt, v.Commitment, v.MessageChecked)
	}
	if _, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: pinned, Message: bytes.NewReader(verdictMessage(verdicts[1]))}); err == nil {
		t.Fatal("another verdict verified")
	}
	if _, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: pinned, Message: bytes.NewReader(released), Salt: &flipped}); err == nil {
		t.Fatal("a changed salt verified")
	}
	rc, err := e.svc.VerifyRelease(it.Label)
	if err != nil || !rc.OK {
		t.Fatalf("VerifyRelease: %+v %v", rc, err)
	}
	if hex.EncodeToString(salt[:]) != it.Salt {
		t.Fatal("salt spelling")
	}
}

// TestUnsaltedItemSettlesAfterUpgrade: an item posted before commitments
// were salted, still pending when certmail is upgraded, is acknowledged
// and released as before: its ROD releases no salt, its bundle verifies
// with the unsalted H(L,M), and VerifyRelease agrees.
func TestUnsaltedItemSettlesAfterUpgrade(t *testing.T) {
	e := newEnv(t)
	var it *certified.Item
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		var err error
		it, err = e.svc.PostUnsalted(tx, certified.PostRequest{Raw: heldMessage, Sender: "clerk@court.example", Recipient: "alice"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if it.Salt != "" || it.HashBytes() != receipts.ItemHash(it.Label, heldMessage) {
		t.Fatalf("not an unsalted item: %+v", it)
	}
	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait(); err != nil {
		t.Fatal(err)
	}
	rc, err := e.svc.VerifyRelease(it.Label)
	if err != nil || !rc.OK {
		t.Fatalf("VerifyRelease: %+v %v", rc, err)
	}
	b, err := e.svc.Bundle(it.Label)
	if err != nil {
		t.Fatal(err)
	}
	v, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: e.gwKey.Public().(ed25519.PublicKey), Message: bytes.NewReader(heldMessage)})
	if err != nil {
		t.Fatal(err)
	}
	if v.Commitment != receipts.CommitmentUnsalted || v.Salt != "" || v.State != evidence.StateReleased {
		t.Fatalf("verdict: commitment %d, salt %q, state %s", v.Commitment, v.Salt, v.State)
	}
}
