package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"certmail/receipts"
	"certmail/receipts/evidence"
)

const apiMessage = "From: Court Clerk <clerk@court.example>\r\nSubject: Notice\r\n\r\nPay by Friday.\r\n"

func apiCall(t *testing.T, method, url, token string, body []byte, basic ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// submitItem posts apiMessage for rcpt and returns the label.
func submitItem(t *testing.T, srv *server, token, rcpt string) string {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"message": apiMessage, "recipients": []string{rcpt}, "deadline": "1h"})
	status, body := apiCall(t, "POST", "http://"+srv.http+"/v1/items", token, req)
	if status != http.StatusCreated {
		t.Fatalf("submit: %d %s", status, body)
	}
	var out struct {
		Items []struct{ Label string } `json:"items"`
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Items) != 1 {
		t.Fatalf("submit: %s %v", body, err)
	}
	return out.Items[0].Label
}

func checkpointOf(t *testing.T, srv *server, vkey string) evidence.TreeHead {
	t.Helper()
	status, body := apiCall(t, "GET", "http://"+srv.http+"/v1/log/checkpoint", "", nil)
	if status != 200 {
		t.Fatalf("checkpoint: %d %s", status, body)
	}
	head, err := evidence.ParseCheckpoint(body, vkey)
	if err != nil {
		t.Fatal(err)
	}
	return head
}

// TestTokenEvidenceVerify runs the sender's commands against the built
// binary: tokens with and without a server, submission over HTTP, a COD
// over HTTP, bundles through the admin socket and from the store, a
// restart in the middle that keeps the log consistent, and `certmail
// verify` on good and tampered bundles.
func TestTokenEvidenceVerify(t *testing.T) {
	dir := t.TempDir()
	tmp := t.TempDir()
	_, bobKey, _ := ed25519.GenerateKey(nil)
	bobPub, _ := receipts.MarshalPublicKeyPEM(bobKey.Public().(ed25519.PublicKey))
	os.WriteFile(filepath.Join(tmp, "bob.pub"), bobPub, 0o644)
	certmail(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	certmail(t, "bob-pw\n", "user", "add", "bob", "--password-stdin", "--pubkey", filepath.Join(tmp, "bob.pub"), "--data", dir).must(t, 0)

	// Tokens without a server.
	r := certmail(t, "", "token", "add", "acme", "--data", dir).must(t, 0)
	acme := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(acme, "cmk_") || strings.Contains(r.stdout, " ") || !strings.Contains(r.stderr, "shown only now") {
		t.Fatalf("token add: %q %q", r.stdout, r.stderr)
	}
	certmail(t, "", "token", "add", "acme", "--data", dir).must(t, exitFailure)
	certmail(t, "", "token", "add", "Not Valid", "--data", dir).must(t, exitUsage)
	certmail(t, "", "token").must(t, exitUsage)
	certmail(t, "", "token", "frob", "x").must(t, exitUsage)

	srv := startServer(t, dir)
	// While the server holds the store, token commands go through its
	// admin socket.
	ops := strings.TrimSpace(certmail(t, "", "token", "add", "ops", "--operator", "--data", dir).must(t, 0).stdout)
	other := strings.TrimSpace(certmail(t, "", "token", "add", "other", "--data", dir).must(t, 0).stdout)
	if r := certmail(t, "", "token", "list", "--data", dir).must(t, 0); !strings.Contains(r.stdout, "acme\tsender\t") ||
		!strings.Contains(r.stdout, "ops\toperator\t") || strings.Contains(r.stdout, "cmk_") {
		t.Fatalf("token list: %q", r.stdout)
	}
	var keys struct {
		NoteVerifierKey string `json:"note_verifier_key"`
		Keys            []struct {
			PEM string `json:"pem"`
		} `json:"keys"`
	}
	_, body := apiCall(t, "GET", base(srv)+"/v1/keys", "", nil)
	if err := json.Unmarshal(body, &keys); err != nil || len(keys.Keys) != 1 {
		t.Fatalf("keys: %s", body)
	}

	l1 := submitItem(t, srv, acme, "alice")
	l2 := submitItem(t, srv, acme, "bob")
	if status, _ := apiCall(t, "GET", base(srv)+"/v1/items/"+l1, other, nil); status != 404 {
		t.Fatalf("another sender's item: %d", status)
	}
	if status, _ := apiCall(t, "GET", base(srv)+"/v1/items/"+l1, ops, nil); status != 200 {
		t.Fatalf("operator: %d", status)
	}
	// Bob acknowledges l2 with his own key, over HTTP.
	var it struct {
		Hash     string    `json:"hash"`
		Deadline time.Time `json:"deadline"`
	}
	_, body = apiCall(t, "GET", base(srv)+"/v1/items/"+l2, acme, nil)
	json.Unmarshal(body, &it)
	hash, _ := receipts.ParseHash(it.Hash)
	cod, err := receipts.SignCOD(bobKey, receipts.NewCODRequest(hostname(t, srv), l2, hash, "bob", it.Deadline).
		Claims(receipts.DecisionCOD, receipts.CustodyRecipientHeld, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if status, body := apiCall(t, "POST", base(srv)+"/v1/items/"+l2+"/cod", "", []byte(cod), "bob", "bob-pw"); status != 200 {
		t.Fatalf("COD: %d %s", status, body)
	}
	headA := checkpointOf(t, srv, keys.NoteVerifierKey)
	if headA.Size != 6 {
		t.Fatalf("log size %d, want 6 (2 COPs, 2 notifications, COD, ROD)", headA.Size)
	}

	b1 := filepath.Join(tmp, "b1.json")
	b2 := filepath.Join(tmp, "b2.json")
	key := filepath.Join(tmp, "gateway.pem")
	msg := filepath.Join(tmp, "m.eml")
	os.WriteFile(msg, []byte(apiMessage), 0o644)
	os.WriteFile(b1, []byte(certmail(t, "", "evidence", l1, "--data", dir).must(t, 0).stdout), 0o644)
	certmail(t, "", "evidence", l2, "-o", b2, "--gateway-key-out", key, "--data", dir).must(t, 0)
	if pem, _ := os.ReadFile(key); string(pem) != keys.Keys[0].PEM {
		t.Fatalf("--gateway-key-out wrote %q, /v1/keys says %q", pem, keys.Keys[0].PEM)
	}
	if r := certmail(t, "", "evidence", "cm-aaaaaaaaaaaaaaaaaaaaaaaaaa", "--data", dir); r.code != exitFailure || !strings.Contains(r.stderr, "no such certified item") {
		t.Fatalf("unknown label: %d %s", r.code, r.stderr)
	}
	certmail(t, "", "evidence", "not-a-label", "--data", dir).must(t, exitUsage)
	certmail(t, "", "evidence", "--data", dir).must(t, exitUsage)

	r = certmail(t, "", "verify", b2, "--gateway-key", key, "--message", msg).must(t, 0)
	for _, want := range []string{"VERIFIED: 4 records of item " + l2 + ", final state released",
		"#2 ConsignmentAcceptance (COD): bob signed a certificate of delivery", "(recipient-held key)",
		"#3 ContentHandover (ROD): message released to bob", "Signed by the pinned gateway key", "The message file matches H(L,r,M)", "the salt r ",
		"Complete: the gateway signed at ", "these are all 4 records of the item", ", complete as of "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, r.stdout)
		}
	}
	certmail(t, "", "verify", b1).must(t, exitFailure) // no key pinned: TestVerifyNeedsPinnedKey
	r = certmail(t, "", "verify", b1, "--trust-embedded-key").must(t, 0)
	if !strings.Contains(r.stdout, "not pinned") || !strings.Contains(r.stdout, "final state notified") {
		t.Fatalf("verify with the embedded key: %s", r.stdout)
	}
	r = certmail(t, "", "verify", b1, "--json", "--trust-embedded-key").must(t, 0)
	var verdict evidence.Verdict
	if err := json.Unmarshal([]byte(r.stdout), &verdict); err != nil || verdict.Label != l1 || verdict.State != evidence.StateNotified {
		t.Fatalf("verify --json: %v %s", err, r.stdout)
	}
	if r := certmail(t, string(mustRead(t, b1)), "verify", "-", "--gateway-key", key); r.code != 0 {
		t.Fatalf("verify from stdin: %d %s", r.code, r.stderr)
	}

	// A restart in the middle: the log goes on where it was, and the
	// checkpoint from before is a prefix of the one after.
	// The background loop published a checkpoint when the server started.
	if !strings.Contains(srv.logs(), "msg=\"checkpoint published\"") {
		t.Errorf("no checkpoint published by the background loop:\n%s", srv.logs())
	}
	srv.stop(t)
	srv = startServer(t, dir)
	l3 := submitItem(t, srv, acme, "alice")
	_, body = apiCall(t, "GET", base(srv)+"/v1/items/"+l3, acme, nil)
	os.WriteFile(filepath.Join(tmp, "l3.json"), body, 0o644)
	headB := checkpointOf(t, srv, keys.NoteVerifierKey)
	if headB.Size != headA.Size+2 {
		t.Fatalf("size %d after the restart, want %d", headB.Size, headA.Size+2)
	}
	var cons struct {
		Proof [][]byte `json:"proof"`
	}
	_, body = apiCall(t, "GET", fmt.Sprintf("%s/v1/log/proof/consistency?first=%d&second=%d", base(srv), headA.Size, headB.Size), "", nil)
	if err := json.Unmarshal(body, &cons); err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, headA.Size, headB.Size, cons.Proof, headA.Root, headB.Root); err != nil {
		t.Fatalf("checkpoints before and after the restart are not consistent: %v", err)
	}
	_, body = apiCall(t, "GET", fmt.Sprintf("%s/v1/log/checkpoint?size=%d", base(srv), headA.Size), "", nil)
	if h, err := evidence.ParseCheckpoint(body, keys.NoteVerifierKey); err != nil || !bytes.Equal(h.Root, headA.Root) {
		t.Fatalf("the old checkpoint: %v", err)
	}
	srv.stop(t)

	// Without a server: straight from the store.
	b3 := filepath.Join(tmp, "b3.json")
	certmail(t, "", "evidence", l3, "-o", b3, "--data", dir).must(t, 0)
	// l3 is still pending: its bundle releases no salt, so the message
	// checks only with the salt the sender was given at posting.
	if r := certmail(t, "", "verify", b3, "--gateway-key", key, "--message", msg); r.code != exitFailure || !strings.Contains(r.stderr, "releases no salt") {
		t.Fatalf("pending item without --salt: %d %s", r.code, r.stderr)
	}
	var l3Item struct {
		Salt string `json:"salt"`
	}
	json.Unmarshal(mustRead(t, filepath.Join(tmp, "l3.json")), &l3Item)
	certmail(t, "", "verify", b3, "--gateway-key", key, "--message", msg, "--salt", l3Item.Salt).must(t, 0)
	if r := certmail(t, "", "verify", b3, "--gateway-key", key, "--message", msg, "--salt", strings.Repeat("0", 64)); r.code != exitFailure || !strings.Contains(r.stderr, "H(L,r,M) is") {
		t.Fatalf("pending item with a wrong --salt: %d %s", r.code, r.stderr)
	}
	certmail(t, "", "verify", b3, "--salt", l3Item.Salt).must(t, exitUsage)
	// A bundle written before commitments were salted still verifies.
	fixture := filepath.Join("..", "..", "receipts", "evidence", "testdata", "unsalted")
	if r := certmail(t, "", "verify", filepath.Join(fixture, "bundle.json"), "--gateway-key", filepath.Join(fixture, "gateway.pem"),
		"--message", filepath.Join(fixture, "message.eml")).must(t, 0); !strings.Contains(r.stdout, "The message file matches H(L,M)\n") {
		t.Errorf("the unsalted fixture: %s", r.stdout)
	}
	certmail(t, "", "token", "del", "other", "--data", dir).must(t, 0)
	certmail(t, "", "token", "del", "other", "--data", dir).must(t, exitFailure)
	if r := certmail(t, "", "token", "list", "--data", dir).must(t, 0); strings.Contains(r.stdout, "other") {
		t.Fatalf("deleted token listed: %s", r.stdout)
	}

	// Tampering, each named in the failure.
	good := mustRead(t, b2)
	otherBundle := mustRead(t, b1)
	_, wrongKey, _ := ed25519.GenerateKey(nil)
	wrongPEM, _ := receipts.MarshalPublicKeyPEM(wrongKey.Public().(ed25519.PublicKey))
	wrongKeyFile := filepath.Join(tmp, "wrong.pem")
	os.WriteFile(wrongKeyFile, wrongPEM, 0o644)
	edit := func(fn func(b *evidence.Bundle)) []byte {
		b, err := evidence.ParseBundle(good)
		if err != nil {
			t.Fatal(err)
		}
		fn(b)
		out, _ := b.Marshal()
		return out
	}
	ob, _ := evidence.ParseBundle(otherBundle)
	for _, c := range []struct {
		name   string
		bundle []byte
		args   []string
		want   string
	}{
		{"flipped byte in a record", flipByte(good, `"jws": "`, 40), nil, "record 0"},
		{"flipped byte in a COD record's signature", edit(func(b *evidence.Bundle) {
			j := []byte(b.Records[2].JWS)
			j[len(j)-3] ^= 0x01
			b.Records[2].JWS = string(j)
		}), nil, "record 2"},
		{"reordered", edit(func(b *evidence.Bundle) { b.Records[1], b.Records[2] = b.Records[2], b.Records[1] }), nil, "seq 2, want 1"},
		{"dropped record", edit(func(b *evidence.Bundle) { b.Records = append(b.Records[:1], b.Records[2:]...) }), nil, "seq 2, want 1"},
		{"dropped COP", edit(func(b *evidence.Bundle) { b.Records = b.Records[1:] }), nil, "want 0"},
		{"dropped last record", edit(func(b *evidence.Bundle) { b.Records = b.Records[:len(b.Records)-1] }), nil,
			"head: the gateway signed 4 records, the bundle has 3"},
		{"head removed", edit(func(b *evidence.Bundle) { b.Head = "" }), nil, "head: a version 2 bundle needs the gateway's signed head"},
		{"downgraded to version 1 and cut short", edit(func(b *evidence.Bundle) {
			b.Version, b.Head, b.Records = 1, "", b.Records[:len(b.Records)-1]
		}), nil, "incomplete: a version 1 bundle has no signed head"},
		{"record of another item", edit(func(b *evidence.Bundle) { b.Records[1] = ob.Records[1] }), nil, "label"},
		{"bad inclusion proof", edit(func(b *evidence.Bundle) { b.Records[3].InclusionProof[0][0] ^= 1 }), nil, "not in the checkpoint's tree"},
		{"flipped checkpoint", edit(func(b *evidence.Bundle) { b.Checkpoint = strings.Replace(b.Checkpoint, "\n6\n", "\n7\n", 1) }), nil, "checkpoint signature"},
		{"wrong gateway key", good, []string{"--gateway-key", wrongKeyFile}, "not a trusted gateway key"},
		{"wrong message", good, []string{"--message", filepath.Join(tmp, "b1.json")}, "H(L,r,M) is"},
		{"flipped byte in the ROD, which releases the salt", edit(func(b *evidence.Bundle) {
			j := []byte(b.Records[3].JWS)
			j[len(j)/2] ^= 0x01
			b.Records[3].JWS = string(j)
		}), []string{"--message", msg}, "record 3"},
		{"another salt given", good, []string{"--message", msg, "--salt", strings.Repeat("ab", 32)}, "the salt given is"},
		{"not JSON", []byte("{"), nil, "decoding bundle"},
	} {
		f := filepath.Join(tmp, "tampered.json")
		os.WriteFile(f, c.bundle, 0o644)
		r := certmail(t, "", append([]string{"verify", f, "--gateway-key", key}, c.args...)...)
		if r.code != exitFailure || !strings.Contains(r.stderr, "certmail verify: FAILED: ") || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q (want FAILED naming %q)", c.name, r.code, r.stderr, c.want)
		}
		if strings.Contains(r.stdout, "VERIFIED") {
			t.Errorf("%s: stdout says VERIFIED", c.name)
		}
	}
	// Knowingly accepted, it verifies with the caveat.
	v1 := filepath.Join(tmp, "v1.json")
	os.WriteFile(v1, edit(func(b *evidence.Bundle) { b.Version, b.Head = 1, "" }), 0o644)
	if r := certmail(t, "", "verify", v1, "--gateway-key", key, "--allow-incomplete").must(t, 0); !strings.Contains(r.stdout, "completeness not shown") {
		t.Errorf("version 1 bundle with --allow-incomplete: %s", r.stdout)
	}
	certmail(t, "", "verify").must(t, exitUsage)
	certmail(t, "", "verify", filepath.Join(tmp, "missing.json")).must(t, exitFailure)
}

func base(srv *server) string { return "http://" + srv.http }

// hostname is the gateway name P the server runs under (the host name by
// default), as a COD must name it.
func hostname(t *testing.T, srv *server) string {
	t.Helper()
	_, body := apiCall(t, "GET", base(srv)+"/v1/keys", "", nil)
	var k struct {
		Gateway string `json:"gateway"`
	}
	json.Unmarshal(body, &k)
	return k.Gateway
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// flipByte flips the low bit of the byte off bytes after the first
// occurrence of marker.
func flipByte(data []byte, marker string, off int) []byte {
	out := bytes.Clone(data)
	i := bytes.Index(out, []byte(marker)) + len(marker) + off
	out[i] ^= 0x01
	return out
}
