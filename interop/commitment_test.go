package interop

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"certmail/receipts"
	"certmail/receipts/evidence"
)

// TestSaltedCommitmentWithJWCrypto (issue 11, items 9 and 14) runs
// docs/verify.md's "the recipient checks M" against a real server, with
// the programs the page names: the stub shows H(L,r,M) and not r; after
// acknowledging, the recipient fetches M over IMAP (curl) and the bundle
// over HTTP with their password (curl), and both certmail verify and the
// jwcrypto script check M with the r the bundle releases. A refused
// item's bundle releases no r: M checks only with the sender's r. The
// bundle written before salting still verifies with both. And both refuse
// a COD dated before its item was posted.
func TestSaltedCommitmentWithJWCrypto(t *testing.T) {
	python := debianPython(t)
	curl := requireTool(t, "curl")
	script := filepath.Join("testdata", "verify_jwcrypto.py")
	s := startServer(t)
	s.waitListening(s.http)
	s.addUser("alice", "alice-pw")
	token := strings.TrimSpace(certmailOut(t, "token", "add", "court", "--data", s.data))
	base := "http://" + s.http
	dir := t.TempDir()
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	verdict := func(v string) string {
		return "From: Court Clerk <clerk@court.example>\r\nTo: alice@example.org\r\nSubject: Decision in case 4711\r\n\r\n" + v + "\r\n"
	}
	type submitted struct {
		Label, Hash, Salt string
	}
	submit := func(msg string) submitted {
		req, _ := json.Marshal(map[string]any{"message": msg, "recipients": []string{"alice@example.org"}, "deadline": "2h", "reveal": "none"})
		status, body := httpDo(t, "POST", base+"/v1/items", token, req)
		var sub struct{ Items []submitted }
		if status != http.StatusCreated || json.Unmarshal(body, &sub) != nil || len(sub.Items) != 1 {
			t.Fatalf("submit: %d %s", status, body)
		}
		return sub.Items[0]
	}
	dismissed, upheld := verdict("The claim is dismissed."), verdict("The claim is upheld.")
	acked := submit(dismissed)
	refused := submit(upheld)
	if _, err := receipts.ParseSalt(acked.Salt); err != nil {
		t.Fatalf("the sender was not given r: %v", err)
	}

	// Before deciding, the recipient has the stubs: H(L,r,M), no r, and
	// no candidate verdict hashes to what they show.
	c, err := imapclient.DialInsecure(s.imap, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "alice-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("fetching the stubs: %v", err)
	}
	for i, it := range []submitted{acked, refused} {
		stub := msgs[i].BodySection[0].Bytes
		if !bytes.Contains(stub, []byte("Certified-Hash: "+it.Hash)) || bytes.Contains(stub, []byte(it.Salt)) {
			t.Fatalf("stub %d shows the wrong hash, or the salt:\n%s", i+1, stub)
		}
		for _, guess := range []string{dismissed, upheld} {
			if receipts.FormatHash(receipts.ItemHash(it.Label, []byte(guess))) == it.Hash {
				t.Fatalf("a guessed verdict hashes to stub %d's hash", i+1)
			}
		}
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Acknowledge").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Refuse").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()

	// The recipient, with curl only: M by its IMAP URL, the bundle and
	// the gateway key over HTTP.
	got := runTool(t, nil, curl, "--silent", "--show-error", "--user", "alice:alice-pw", "imap://"+s.imap+"/INBOX;UID=3")
	if got != dismissed {
		t.Fatalf("the released message over IMAP:\n%q\nwant\n%q", got, dismissed)
	}
	mFile := file("m.eml", []byte(got))
	bundle := file("bundle.json", []byte(runTool(t, nil, curl, "--silent", "--show-error", "--fail", "--user", "alice:alice-pw",
		base+"/v1/items/"+acked.Label+"/evidence")))
	var keys struct {
		Keys []struct{ PEM string } `json:"keys"`
	}
	if err := json.Unmarshal([]byte(runTool(t, nil, curl, "--silent", "--fail", base+"/v1/keys")), &keys); err != nil || len(keys.Keys) != 1 {
		t.Fatalf("keys: %v", err)
	}
	key := file("gateway.pem", []byte(keys.Keys[0].PEM))
	out := certmailOut(t, "verify", bundle, "--gateway-key", key, "--message", mFile)
	for _, want := range []string{"The message file matches H(L,r,M)", "the salt r " + acked.Salt + " was released with the message", "final state released"} {
		if !strings.Contains(out, want) {
			t.Errorf("certmail verify lacks %q:\n%s", want, out)
		}
	}
	pyOut, err := exec.Command(python, script, bundle, key, mFile).CombinedOutput()
	if err != nil || !strings.Contains(string(pyOut), "message: H(L,r,M) matches") || !strings.Contains(string(pyOut), "with salt r "+acked.Salt) {
		t.Fatalf("verify_jwcrypto.py on the recipient's bundle: %v\n%s", err, pyOut)
	}
	// Before release nobody but the sender gets the bundle: the refused
	// item's is 404 for the recipient.
	if status, _ := httpDoBasic(t, base+"/v1/items/"+refused.Label+"/evidence", "alice", "alice-pw"); status != http.StatusNotFound {
		t.Fatalf("the recipient got the bundle of an item not released to them: %d", status)
	}

	// The refused item: its bundle (the sender's) releases no r; M checks
	// only with the r the sender was given, and not with another.
	status, rb := httpDo(t, "GET", base+"/v1/items/"+refused.Label+"/evidence", token, nil)
	if status != 200 || bytes.Contains(rb, []byte(refused.Salt)) {
		t.Fatalf("refused item's bundle: %d, or it carries the salt", status)
	}
	rBundle, rMsg := file("refused.json", rb), file("refused.eml", []byte(upheld))
	wrongSalt := strings.Repeat("0", 64)
	for _, c := range []struct {
		name, salt, want string
	}{
		{"no salt", "", "releases no salt"},
		{"another salt", wrongSalt, "H(L,r,M) is"},
		{"the sender's salt", refused.Salt, ""},
	} {
		args := []string{"verify", rBundle, "--gateway-key", key, "--message", rMsg}
		pyArgs := []string{script, rBundle, key, rMsg}
		if c.salt != "" {
			args = append(args, "--salt", c.salt)
			pyArgs = append(pyArgs, c.salt)
		}
		goOut, goErr := exec.Command(certmailBin, args...).CombinedOutput()
		pyOut, pyErr := exec.Command(python, pyArgs...).CombinedOutput()
		if c.want == "" {
			if goErr != nil || pyErr != nil || !strings.Contains(string(pyOut), "H(L,r,M) matches") {
				t.Errorf("%s: certmail %v\n%s\npython %v\n%s", c.name, goErr, goOut, pyErr, pyOut)
			}
			continue
		}
		if goErr == nil || !strings.Contains(string(goOut), c.want) {
			t.Errorf("%s: certmail verify passed or did not say %q:\n%s", c.name, c.want, goOut)
		}
		if pyErr == nil || !strings.Contains(string(pyOut), "FAIL") {
			t.Errorf("%s: verify_jwcrypto.py passed:\n%s", c.name, pyOut)
		}
	}

	// Tampering with r: a salt edited in the ROD (the record's signature
	// breaks), or another salt given than the one released.
	var b map[string]any
	if err := json.Unmarshal(mustReadFile(t, bundle), &b); err != nil {
		t.Fatal(err)
	}
	rec := b["records"].([]any)[3].(map[string]any)
	jws := rec["jws"].(string)
	rec["jws"] = editJWSPayload(t, jws, func(p map[string]any) { p["data"].(map[string]any)["salt"] = wrongSalt })
	tampered, _ := json.Marshal(b)
	tFile := file("tampered.json", tampered)
	if out, err := exec.Command(certmailBin, "verify", tFile, "--gateway-key", key, "--message", mFile).CombinedOutput(); err == nil || !strings.Contains(string(out), "record 3") {
		t.Errorf("certmail verify of an edited salt: %v\n%s", err, out)
	}
	if out, err := exec.Command(python, script, tFile, key, mFile).CombinedOutput(); err == nil || !strings.Contains(string(out), "FAIL") {
		t.Errorf("verify_jwcrypto.py of an edited salt: %v\n%s", err, out)
	}
	if out, err := exec.Command(python, script, bundle, key, mFile, wrongSalt).CombinedOutput(); err == nil || !strings.Contains(string(out), "the salt given is") {
		t.Errorf("verify_jwcrypto.py with another salt than the released one: %v\n%s", err, out)
	}

	// A bundle written before commitments were salted verifies with both.
	fixture := filepath.Join("..", "receipts", "evidence", "testdata", "unsalted")
	fb, fk, fm := filepath.Join(fixture, "bundle.json"), filepath.Join(fixture, "gateway.pem"), filepath.Join(fixture, "message.eml")
	if out := certmailOut(t, "verify", fb, "--gateway-key", fk, "--message", fm); !strings.Contains(out, "The message file matches H(L,M)\n") {
		t.Errorf("certmail verify of the unsalted fixture:\n%s", out)
	}
	if out, err := exec.Command(python, script, fb, fk, fm).CombinedOutput(); err != nil || !strings.Contains(string(out), "message: H(L,M) matches") {
		t.Errorf("verify_jwcrypto.py of the unsalted fixture: %v\n%s", err, out)
	}

	// Item 14: a COD dated a day before its item was posted. The gateway
	// refuses one; a bundle that carries one anyway (made here with a log
	// of its own) is refused by both verifiers.
	early := earlyCODBundle(t)
	eBundle, eKey := file("early.json", early.bundle), file("early.pem", early.pem)
	if out, err := exec.Command(certmailBin, "verify", eBundle, "--gateway-key", eKey).CombinedOutput(); err == nil || !strings.Contains(string(out), "before the item was posted") {
		t.Errorf("certmail verify of a COD signed before posting: %v\n%s", err, out)
	}
	if out, err := exec.Command(python, script, eBundle, eKey).CombinedOutput(); err == nil || !strings.Contains(string(out), "before the item was posted") {
		t.Errorf("verify_jwcrypto.py of a COD signed before posting: %v\n%s", err, out)
	}
}

type earlyBundle struct{ bundle, pem []byte }

// earlyCODBundle builds, with certmail's own evidence log, the bundle of
// an item whose COD says it was signed a day before the item was posted.
func earlyCODBundle(t *testing.T) earlyBundle {
	t.Helper()
	gw, err := receipts.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	bob, err := receipts.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := evidence.NewSigner("mail.example.org", gw)
	if err != nil {
		t.Fatal(err)
	}
	l, err := evidence.NewLog(signer, "mail.example.org/certmail/evidence")
	if err != nil {
		t.Fatal(err)
	}
	kv := receipts.NewMemKV()
	label, _ := receipts.NewLabel()
	salt, _ := receipts.NewSalt()
	hash := receipts.SaltedItemHash(label, salt, []byte("M"))
	posted := time.Now()
	cod, err := receipts.SignCOD(bob, receipts.NewCODRequest("mail.example.org", label, hash, "bob", posted.Add(time.Hour)).
		Claims(receipts.DecisionCOD, receipts.CustodyRecipientHeld, posted.Add(-24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []evidence.Event{
		evidence.NewSubmissionAcceptance(label, hash, receipts.CommitmentSalted, "", "bob", posted.Add(time.Hour)),
		evidence.NewConsignmentAcceptance(label, hash, cod, "bob", evidence.CustodyRecipientHeld),
		evidence.NewContentHandover(label, hash, cod, "bob", salt.String()),
	} {
		if _, err := l.Append(kv, ev); err != nil {
			t.Fatal(err)
		}
	}
	party, err := evidence.NewPartyKey("bob", bob.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.BuildBundle(kv, label, party)
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := receipts.MarshalPublicKeyPEM(gw.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return earlyBundle{data, pem}
}

// httpDoBasic GETs url with HTTP Basic credentials.
func httpDoBasic(t *testing.T, url, user, pass string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editJWSPayload rewrites a compact JWS's payload and keeps its signature,
// which then no longer verifies.
func editJWSPayload(t *testing.T, jws string, edit func(map[string]any)) string {
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
