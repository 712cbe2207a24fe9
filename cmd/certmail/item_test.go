package main

import (
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"certmail/receipts"
)

// TestItemShowAndOutbox runs `certmail item show` and `certmail outbox
// list|retry` against a real server and store (issue 15, "What happened
// to my item?"): an item's state and history, an operator's view of its
// stub, a refused COD, its notices (mail waiting for a relay, a webhook
// that failed for good and was retried), and the same from the store
// once the server has stopped.
func TestItemShowAndOutbox(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	var posts atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		if refuse.Load() {
			http.Error(w, "no such hook", http.StatusNotFound) // permanent: a dead letter at once
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "certmail.toml")
	os.WriteFile(cfg, []byte("[[webhook]]\nurl = \""+hook.URL+"/hook\"\nsecret = \"s3cret-s3cret-s3cret\"\n"), 0o600)
	_, bobKey, _ := ed25519.GenerateKey(nil)
	bobPub, _ := receipts.MarshalPublicKeyPEM(bobKey.Public().(ed25519.PublicKey))
	pubFile := filepath.Join(t.TempDir(), "bob.pub")
	os.WriteFile(pubFile, bobPub, 0o644)
	certmail(t, "bob-pw\n", "user", "add", "bob", "--password-stdin", "--pubkey", pubFile, "--data", dir).must(t, 0)
	certmail(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	acme := strings.TrimSpace(certmail(t, "", "token", "add", "acme", "--sender", "clerk@court.example", "--data", dir).must(t, 0).stdout)

	srv := startServer(t, dir, "--config", cfg)
	label := submitItem(t, srv, acme, "bob")
	run := func(args ...string) result {
		t.Helper()
		return certmail(t, "", append(args, "--data", dir, "--config", cfg)...).must(t, 0)
	}
	if out := run("item", "list").stdout; !strings.Contains(out, label+"  notified  bob") {
		t.Errorf("item list:\n%s", out)
	}
	if out := run("item", "list", "--state", "released").stdout; out != "no certified items\n" {
		t.Errorf("item list --state released:\n%s", out)
	}
	// The webhook's notice of posting fails for good: a dead letter.
	var list []struct {
		ID, State, Kind string
		LastError       string `json:"last_error"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		list = nil
		json.Unmarshal([]byte(run("outbox", "list", "--json").stdout), &list)
		dead := 0
		for _, n := range list {
			if n.State == "dead" {
				dead++
			}
		}
		if dead > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter after 20s: %+v\n%s", list, srv.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := run("outbox", "list").stdout
	for _, want := range []string{"dead to webhook " + hook.URL, "404", "waiting-for-relay to clerk@court.example", "certmail outbox retry cm-"} {
		if !strings.Contains(out, want) {
			t.Errorf("outbox list does not say %q:\n%s", want, out)
		}
	}

	// An operator looks at the stub; a COD signed by a key not bob's is
	// refused.
	run("show", "bob", "--uid", "1")
	var it struct {
		Hash     string    `json:"hash"`
		Deadline time.Time `json:"deadline"`
	}
	_, body := apiCall(t, "GET", base(srv)+"/v1/items/"+label, acme, nil)
	json.Unmarshal(body, &it)
	hash, _ := receipts.ParseHash(it.Hash)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	forged, _ := receipts.SignCOD(otherKey, receipts.NewCODRequest(hostname(t, srv), label, hash, "bob", it.Deadline).
		Claims(receipts.DecisionCOD, receipts.CustodyRecipientHeld, time.Now()))
	if status, body := apiCall(t, "POST", base(srv)+"/v1/items/"+label+"/cod", "", []byte(forged), "bob", "bob-pw"); status == 200 {
		t.Fatalf("forged COD accepted: %s", body)
	}

	out = run("item", "show", label).stdout
	for _, want := range []string{
		"item " + label + ": notified", "sender", "clerk@court.example", "recipient  bob",
		"SubmissionAcceptance", "ConsignmentNotification", "OperatorView", "actor=",
		"refused CODs (1):", "from bob:",
		"notices (", "waiting-for-relay to clerk@court.example", "dead to webhook",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("item show does not say %q:\n%s", want, out)
		}
	}
	var rep struct {
		Item    struct{ Label, State string }
		Events  []struct{ Type string }
		Refused []struct{ Account string } `json:"refused_cods"`
		Notices []struct{ ID, State string }
	}
	if err := json.Unmarshal([]byte(run("item", "show", label, "--json").stdout), &rep); err != nil ||
		rep.Item.Label != label || len(rep.Events) != 3 || rep.Events[2].Type != "OperatorView" || len(rep.Refused) != 1 || len(rep.Notices) < 2 {
		t.Errorf("item show --json: %+v %v", rep, err)
	}

	// Bob acknowledges; the operator reads the released message and
	// forwards it: both land in the item's evidence.
	cod, err := receipts.SignCOD(bobKey, receipts.NewCODRequest(hostname(t, srv), label, hash, "bob", it.Deadline).
		Claims(receipts.DecisionCOD, receipts.CustodyRecipientHeld, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if status, body := apiCall(t, "POST", base(srv)+"/v1/items/"+label+"/cod", "", []byte(cod), "bob", "bob-pw"); status != 200 {
		t.Fatalf("COD: %d %s", status, body)
	}
	if out := run("show", "bob", "--uid", "2").stdout; !strings.Contains(out, "Pay by Friday.") {
		t.Fatalf("show of the released message: %s", out)
	}
	run("forward", "bob", "--uid", "2", "--to", "alice")
	out = run("item", "show", label).stdout
	for _, want := range []string{"item " + label + ": released", "signed by", "ContentHandover",
		`reason="operator viewed the message of bob"`, `reason="operator forwarded the message of bob to alice"`} {
		if !strings.Contains(out, want) {
			t.Errorf("item show after release does not say %q:\n%s", want, out)
		}
	}
	var items []struct{ Label, State string }
	if err := json.Unmarshal([]byte(run("item", "list", "--recipient", "bob", "--json").stdout), &items); err != nil ||
		len(items) != 1 || items[0].Label != label || items[0].State != "released" {
		t.Errorf("item list --json: %+v %v", items, err)
	}
	bundle := filepath.Join(t.TempDir(), "b.json")
	run("evidence", label, "-o", bundle)
	if v := certmail(t, "", "verify", bundle, "--trust-embedded-key").must(t, 0).stdout; strings.Count(v, "OperatorView") != 3 {
		t.Errorf("verify shows %d operator views, want 3 (stub, message, forward):\n%s", strings.Count(v, "OperatorView"), v)
	}

	// The hook is fixed: retry sends the dead letter at once.
	refuse.Store(false)
	before := posts.Load()
	if out := run("outbox", "retry", "--all").stdout; !strings.Contains(out, "queued again: cm-") || strings.Contains(out, "not running") {
		t.Errorf("outbox retry --all: %s", out)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if strings.Contains(run("outbox", "list", "--sent").stdout, "sent to webhook") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retried webhook not sent (posts %d -> %d):\n%s", before, posts.Load(), run("outbox", "list", "--sent").stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := certmail(t, "", "outbox", "retry", "cm-nosuchnotice", "--data", dir); r.code != exitFailure || !strings.Contains(r.stderr, "no dead letter") {
		t.Errorf("retry of an unknown ID: %d %s", r.code, r.stderr)
	}
	certmail(t, "", "outbox", "retry", "--data", dir).must(t, exitUsage)
	srv.stop(t)

	// Without the server, from the store.
	out = run("item", "show", label).stdout
	if !strings.Contains(out, "sent to webhook") || !strings.Contains(out, "forwarded the message") {
		t.Errorf("item show from the store:\n%s", out)
	}
	if r := certmail(t, "", "item", "show", "cm-aaaaaaaaaaaaaaaaaaaaaaaaaa", "--data", dir); r.code != exitFailure || !strings.Contains(r.stderr, "no such certified item") {
		t.Errorf("unknown item: %d %s", r.code, r.stderr)
	}
	certmail(t, "", "item", "show", "not-a-label", "--data", dir).must(t, exitUsage)
}
