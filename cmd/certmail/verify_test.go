package main

import (
	"io"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"certmail/certified"
	"certmail/mailbox"
)

// offlineItem posts a certified item to user in the data directory dir
// with `certmail deliver` (no server) and returns its label and M.
func offlineItem(t *testing.T, dir, user string) (label, msg string) {
	t.Helper()
	certmail(t, "pw\n", "user", "add", user, "--password-stdin", "--data", dir).must(t, 0)
	msg = "From: clerk@court.example\r\nTo: " + user + "@example.org\r\nSubject: summons\r\n" +
		"Certified-Delivery: deadline=72h\r\n\r\nYou are summoned.\r\n"
	certmail(t, msg, "deliver", "--to", user, "--data", dir).must(t, 0)
	st, err := mailbox.Open(mailbox.Options{Dir: dir, GCInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := inbox(t, st, user)
	if len(got) != 1 {
		t.Fatalf("INBOX of %s holds %d messages, want the stub", user, len(got))
	}
	m, err := mail.ReadMessage(strings.NewReader(string(got[0])))
	if err != nil {
		t.Fatal(err)
	}
	if label = m.Header.Get("Certified-Label"); label == "" {
		t.Fatalf("no stub in INBOX: %q", got[0])
	}
	return label, msg
}

// TestVerifyNeedsPinnedKey: a bundle names the key that signed it, so a
// forger's bundle, signed by a key of their own, checks out against its
// embedded key. certmail verify must refuse it unless the gateway's key is
// pinned (and then it fails on the key) or the embedded key is accepted
// knowingly with --trust-embedded-key.
func TestVerifyNeedsPinnedKey(t *testing.T) {
	tmp := t.TempDir()
	real, forger := filepath.Join(tmp, "real"), filepath.Join(tmp, "forger")
	realLabel, msg := offlineItem(t, real, "alice")
	forgedLabel, _ := offlineItem(t, forger, "alice")
	msgFile := filepath.Join(tmp, "m.eml")
	os.WriteFile(msgFile, []byte(msg), 0o644)

	realBundle, forgedBundle := filepath.Join(tmp, "real.json"), filepath.Join(tmp, "forged.json")
	realKey, forgerKey := filepath.Join(tmp, "real.pem"), filepath.Join(tmp, "forger.pem")
	certmail(t, "", "evidence", realLabel, "-o", realBundle, "--gateway-key-out", realKey, "--data", real).must(t, 0)
	certmail(t, "", "evidence", forgedLabel, "-o", forgedBundle, "--gateway-key-out", forgerKey, "--data", forger).must(t, 0)

	// No key: refused, whether the bundle is the real gateway's or not,
	// saying how to pin one; nothing says VERIFIED.
	for _, b := range []string{forgedBundle, realBundle} {
		for _, args := range [][]string{{"verify", b}, {"verify", b, "--message", msgFile}, {"verify", b, "--json"}, {"verify", "-"}} {
			stdin := ""
			if args[1] == "-" {
				stdin = string(mustRead(t, b))
			}
			r := certmail(t, stdin, args...)
			if r.code != exitFailure || !strings.Contains(r.stderr, "gateway key not pinned") ||
				!strings.Contains(r.stderr, "--gateway-key") || !strings.Contains(r.stderr, "--trust-embedded-key") {
				t.Errorf("%v: exit %d, stderr %q: want a failure asking for --gateway-key", args, r.code, r.stderr)
			}
			if strings.Contains(r.stdout, "VERIFIED") {
				t.Errorf("%v: stdout says VERIFIED: %s", args, r.stdout)
			}
		}
	}
	// The real gateway's key pinned: the forgery fails, the real one passes.
	if r := certmail(t, "", "verify", forgedBundle, "--gateway-key", realKey); r.code != exitFailure || !strings.Contains(r.stderr, "not a trusted gateway key") {
		t.Errorf("forged bundle with the real key pinned: exit %d, stderr %q", r.code, r.stderr)
	}
	// The item is still pending: its bundle releases no salt, so M checks
	// with the salt the sender holds.
	if r := certmail(t, "", "verify", realBundle, "--gateway-key", realKey, "--message", msgFile, "--salt", heldSalt(t, real, realLabel)).must(t, 0); !strings.Contains(r.stdout, "Signed by the pinned gateway key") {
		t.Errorf("real bundle, pinned: %s", r.stdout)
	}
	// Knowingly accepted: it verifies, and says the key was not pinned.
	r := certmail(t, "", "verify", forgedBundle, "--trust-embedded-key").must(t, 0)
	if !strings.Contains(r.stdout, "VERIFIED") || !strings.Contains(r.stdout, "not pinned") {
		t.Errorf("--trust-embedded-key: %s", r.stdout)
	}
	// A bundle broken in itself is reported as such, key or no key.
	broken := filepath.Join(tmp, "broken.json")
	os.WriteFile(broken, flipByte(mustRead(t, forgedBundle), `"jws": "`, 40), 0o644)
	if r := certmail(t, "", "verify", broken); r.code != exitFailure || !strings.Contains(r.stderr, "record 0") {
		t.Errorf("broken bundle without a key: exit %d, stderr %q", r.code, r.stderr)
	}
}

// heldSalt reads the salt r the gateway holds for a pending item in the
// data directory dir: what the sender was given at posting.
func heldSalt(t *testing.T, dir, label string) string {
	t.Helper()
	st, err := mailbox.Open(mailbox.Options{Dir: dir, GCInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var salt string
	if err := st.View(func(tx *mailbox.Tx) error {
		it, err := certified.GetItem(tx, label)
		if err == nil {
			salt = it.Salt
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return salt
}
