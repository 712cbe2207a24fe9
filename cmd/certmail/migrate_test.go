package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"certmail/kv"
	"certmail/kv/badgerkv"
	"certmail/kv/keyspace"
	"certmail/mailbox"
	"certmail/receipts"
)

// TestMigrateCommand runs `certmail migrate` from a data directory with
// accounts, messages, a certified item and its evidence to a private
// PostgreSQL and back into a new directory: each run prints what it
// copied and the check in human units, the round trip keeps every
// account, message body, the item and its evidence (the same bundle,
// which verifies), a second copy into the database is refused, a
// password in the URL is refused without being printed, and a corrupted
// destination makes --check fail (exit 1) naming the body that differs.
func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	_, bobKey, _ := ed25519.GenerateKey(nil)
	bobPub, _ := receipts.MarshalPublicKeyPEM(bobKey.Public().(ed25519.PublicKey))
	pubFile := filepath.Join(t.TempDir(), "bob.pub")
	os.WriteFile(pubFile, bobPub, 0o644)
	certmail(t, "bob-pw\n", "user", "add", "bob", "--password-stdin", "--pubkey", pubFile, "--data", dir).must(t, 0)
	certmail(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	for i := range 3 {
		certmail(t, fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("y", 50<<10)), "deliver", "--to", "alice", "--data", dir).must(t, 0)
	}
	acme := strings.TrimSpace(certmail(t, "", "token", "add", "acme", "--sender", "clerk@court.example", "--data", dir).must(t, 0).stdout)
	srv := startServer(t, dir)
	label := submitItem(t, srv, acme, "bob")
	srv.stop(t)
	bundle := func(d string) []byte {
		t.Helper()
		out := filepath.Join(t.TempDir(), "bundle.json")
		certmail(t, "", "evidence", label, "-o", out, "--data", d).must(t, 0)
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	wantBundle := bundle(dir)
	wantInbox := inboxOf(t, dir, "alice")

	dsn := pg.DB(t)
	shown := strings.SplitN(dsn, "?", 2)[0]
	units := `\d+(\.\d)? (B|KiB|MiB)`
	r := certmail(t, "", "migrate", "--from", dir, "--to", dsn).must(t, 0)
	for _, re := range []string{
		`(?m)^copied \d+ records \(` + units + `\) from ` + regexp.QuoteMeta(dir) + ` to ` + regexp.QuoteMeta(shown) + ` in [0-9.]+m?s, ` + units + `/s$`,
		`(?m)^not in the store, left in ` + regexp.QuoteMeta(dir) + `: gateway.key`,
		`(?m)^check: identical: (\d+) records \((` + units + `)\) in the source, (\d+) records \((` + units + `)\) in the destination$`,
		`(?m)^  raw/ +5 +5 +` + units + `$`, // alice's three, the item's M and stub
		`(?m)^  x/evlog/ +\d+ +\d+ +` + units + `$`,
		`(?m)^  x/cm/ +\d+ +\d+ +` + units + `$`,
		`(?m)^  message bodies: 5 \(` + units + `\), the SHA-256 of each equal$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("migrate output does not match %s:\n%s", re, r.stdout)
		}
	}
	if strings.ContainsAny(r.stdout+r.stderr, "\r\x1b") || strings.Contains(r.stdout, "passfile") {
		t.Errorf("terminal codes or the URL's query in the output:\n%s%s", r.stdout, r.stderr)
	}
	// Into the same database again: refused.
	if r := certmail(t, "", "migrate", "--from", dir, "--to", dsn); r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("second migrate: %d %s", r.code, r.stderr)
	}
	// A password on the command line: refused, and not echoed.
	if r := certmail(t, "", "migrate", "--from", dir, "--to", "postgres://certmail:s3cret@127.0.0.1:1/certmail"); r.code != 1 ||
		!strings.Contains(r.stderr, "passfile") || strings.Contains(r.stderr+r.stdout, "s3cret") {
		t.Errorf("password in the URL: %d %s", r.code, r.stderr)
	}

	// Back into a new data directory, the password from PGPASSFILE.
	u, _ := url.Parse(dsn)
	q := u.Query()
	passfile := q.Get("passfile")
	q.Del("passfile")
	u.RawQuery = q.Encode()
	dir2 := filepath.Join(t.TempDir(), "back")
	cmd := exec.Command(binary, "migrate", "--from", u.String(), "--to", dir2)
	cmd.Env = append(os.Environ(), "PGPASSFILE="+passfile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("migrate back: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "check: identical") {
		t.Errorf("migrate back:\n%s", stdout.String())
	}
	// The gateway's key is a file of the data directory, not in the
	// store: the operator copies it, as docs/operations.md says.
	key, _ := os.ReadFile(filepath.Join(dir, "gateway.key"))
	os.WriteFile(filepath.Join(dir2, "gateway.key"), key, 0o600)
	// The same records, proofs and checkpoint (the head is signed at
	// each export, so its time differs), and the copy verifies.
	got := bundle(dir2)
	var w, g struct {
		Records, Parties json.RawMessage
		Checkpoint       string
	}
	json.Unmarshal(wantBundle, &w)
	json.Unmarshal(got, &g)
	if len(w.Records) < 100 || !bytes.Equal(w.Records, g.Records) || !bytes.Equal(w.Parties, g.Parties) || w.Checkpoint != g.Checkpoint {
		t.Errorf("the evidence changed in the round trip:\n%s\n%s", wantBundle, got)
	}
	b := filepath.Join(t.TempDir(), "b.json")
	os.WriteFile(b, got, 0o600)
	certmail(t, "", "verify", b, "--trust-embedded-key").must(t, 0)
	if out := certmail(t, "", "item", "list", "--data", dir2).must(t, 0).stdout; !strings.Contains(out, label) {
		t.Errorf("item list after the round trip:\n%s", out)
	}
	if out := certmail(t, "", "user", "list", "--data", dir2).must(t, 0).stdout; out != "alice\nbob\n" {
		t.Errorf("accounts after the round trip: %q", out)
	}
	if got := inboxOf(t, dir2, "alice"); !slices.EqualFunc(got, wantInbox, bytes.Equal) {
		t.Errorf("alice's INBOX differs after the round trip")
	}
	certmail(t, "", "migrate", "--check", "--from", dir, "--to", dir2).must(t, 0)

	// One byte of one body changed in the copy: --check fails and says
	// which.
	db, err := badgerkv.Open(badgerkv.Options{Dir: dir2})
	if err != nil {
		t.Fatal(err)
	}
	var changed []byte
	err = kv.Update(db, func(tx kv.Txn) error {
		var body []byte
		if err := tx.Scan(kv.Range{Prefix: []byte(keyspace.Raw), Limit: 1}, func(k, v []byte) error {
			changed, body = bytes.Clone(k), bytes.Clone(v)
			return nil
		}); err != nil {
			return err
		}
		body[len(body)-3] ^= 0x20
		return tx.Set(changed, body)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	r = certmail(t, "", "migrate", "--check", "--from", dir, "--to", dir2)
	if r.code != 1 || !strings.Contains(r.stdout, "check: DIFFERENT") || !strings.Contains(r.stdout, "message bodies: 5") ||
		!strings.Contains(r.stdout, "1 differ") || !strings.Contains(r.stdout, "differs raw/") || !strings.Contains(r.stderr, "differ") {
		t.Errorf("corrupted copy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// inboxOf reads acct's INBOX from dir and closes the store again, so
// that the next command may open it.
func inboxOf(t *testing.T, dir, acct string) [][]byte {
	t.Helper()
	st, err := mailbox.Open(mailbox.Options{Dir: dir, GCInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return inbox(t, st, acct)
}
