package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"certmail/mailbox"
)

// TestEvidenceLogIdentity: the evidence log keeps the gateway name it was
// created under. serve under another hostname used to start with a WARN
// and leave every `certmail evidence` failing ("checkpoint signature:
// note has no verifiable signatures"); now serve refuses and says which
// name to set, and evidence and verify work under any configured name.
// A store from before the name was stored adopts the name of its latest
// checkpoint.
func TestEvidenceLogIdentity(t *testing.T) {
	dir := t.TempDir()
	// Created by `user add` under the machine's name; nothing is signed
	// yet, so serve's configured name takes over.
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	srv := startServer(t, dir, "--hostname", "one.example")
	if err := lmtpSend(t, srv.lmtp, "alice@example.org", "From: clerk@court.example\r\nSubject: item\r\nCertified-Delivery: deadline=3d\r\n\r\nbody\r\n"); err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
	st := openStore(t, dir)
	m := regexp.MustCompile(`Certified-Label: (\S+)`).FindSubmatch(inbox(t, st, "alice")[0])
	st.Close()
	if m == nil {
		t.Fatal("no stub in the INBOX")
	}
	label := string(m[1])

	serveAs := func(name string) result {
		r := certmail(t, "", "serve", "--data", dir, "--imap", "", "--lmtp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--hostname", name)
		r.stderr = strings.ReplaceAll(r.stderr, `\"`, `"`) // slog quotes the error
		return r
	}
	r := serveAs("two.example").must(t, exitFailure)
	if !strings.Contains(r.stderr, `created under the gateway name "one.example"`) || !strings.Contains(r.stderr, `Set hostname = "one.example"`) {
		t.Fatalf("serve under another name: %s", r.stderr)
	}
	// evidence and verify under the default (the machine's) name.
	bundle := filepath.Join(t.TempDir(), "b.json")
	gwKey := filepath.Join(t.TempDir(), "gateway.pub")
	certmail(t, "", "evidence", label, "-o", bundle, "--gateway-key-out", gwKey, "--data", dir).must(t, 0)
	if r := certmail(t, "", "verify", bundle, "--gateway-key", gwKey).must(t, 0); !strings.Contains(r.stdout, "one.example") {
		t.Errorf("verify: %s", r.stdout)
	}

	// A store from before: no stored name, a checkpoint published as
	// one.example. Every command adopts that name.
	st = openStore(t, dir)
	if err := st.Update(func(tx *mailbox.Tx) error { return tx.Delete([]byte("evlog/identity")) }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	certmail(t, "", "evidence", label, "-o", bundle, "--data", dir).must(t, 0)
	certmail(t, "", "verify", bundle, "--gateway-key", gwKey).must(t, 0)
	r = serveAs("two.example").must(t, exitFailure)
	if !strings.Contains(r.stderr, `Set hostname = "one.example"`) {
		t.Fatalf("serve under another name after the upgrade: %s", r.stderr)
	}
	srv = startServer(t, dir, "--hostname", "one.example")
	// The one line saying notices wait without a relay is not about the
	// log's name.
	if logs := regexp.MustCompile(`(?m)^.*no relay configured.*$`).ReplaceAllString(srv.logs(), ""); strings.Contains(logs, "level=WARN") {
		t.Errorf("serve under its log's name warns:\n%s", srv.logs())
	}
	certmail(t, "", "evidence", label, "-o", bundle, "--data", dir).must(t, 0)
	srv.stop(t)
}
