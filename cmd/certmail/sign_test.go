package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSignAllSkipsNonStubs: anyone can send a message with a
// Certified-Label header. `certmail sign --all` used to stop at the first
// such message ("stub UID 1: no cod-request.json attachment") and sign
// nothing; it must pass over what is not a stub, sign every real stub, and
// report both.
func TestSignAllSkipsNonStubs(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	key := filepath.Join(t.TempDir(), "alice.pem")
	certmail(t, "", "keygen", "--out", key).must(t, 0)
	certmail(t, "", "key", "register", "--user", "alice", "--pubkey", key+".pub", "--data", dir).must(t, 0)
	srv := startServer(t, dir, "--imap", "127.0.0.1:0")
	if srv.imap == "" {
		t.Fatalf("no IMAP address in the log:\n%s", srv.logs())
	}

	// The ordinary messages come first, as they would in a mailbox where
	// they arrived before the stubs.
	fake := "From: prankster@example.net\r\nSubject: looks like a stub\r\nCertified-Label: cm-aaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\nnot a stub\r\n"
	bogusRequest := "From: prankster@example.net\r\nSubject: bad request\r\nCertified-Label: cm-bbbbbbbbbbbbbbbbbbbbbbbbbb\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsign me\r\n" +
		"--b\r\nContent-Type: application/json\r\nContent-Disposition: attachment; filename=cod-request.json\r\n\r\n{\"not\":\"a request\"}\r\n--b--\r\n"
	for _, m := range []string{fake, bogusRequest} {
		if err := lmtpSend(t, srv.lmtp, "alice@example.org", m); err != nil {
			t.Fatalf("ordinary message refused: %v", err)
		}
	}
	var bodies []string
	for i := range 2 {
		body := "certified body " + string(rune('A'+i))
		bodies = append(bodies, body)
		m := "From: clerk@court.example\r\nSubject: item\r\nCertified-Delivery: deadline=72h\r\n\r\n" + body + "\r\n"
		if err := lmtpSend(t, srv.lmtp, "alice@example.org", m); err != nil {
			t.Fatalf("certified message refused: %v", err)
		}
	}

	sign := func(args ...string) result {
		return certmail(t, "alice-pw\n", append([]string{"sign", "--imap", srv.imap, "--user", "alice", "--key", key, "--yes", "--password-stdin"}, args...)...)
	}
	r := sign("--all")
	if r.code != 0 {
		t.Fatalf("sign --all: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		`message UID 1 skipped (subject "looks like a stub"): not a stub: no cod-request.json attachment`,
		`message UID 2 skipped (subject "bad request"): not a stub: cod-request.json: `,
		"2 of 2 stub(s) signed, 0 failed; 2 message(s) skipped as not stubs",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sign --all output lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := len(regexp.MustCompile(`cod signed and handed in`).FindAllString(r.stdout, -1)); n != 2 {
		t.Errorf("%d CODs handed in, want 2:\n%s", n, r.stdout)
	}

	// Nothing left to sign: the two ordinary messages are still skipped,
	// and the command says there is no stub.
	r = sign("--all")
	if r.code != exitFailure || !strings.Contains(r.stderr, "no certified-item stubs found (2 message(s) with a Certified-Label header are not stubs)") {
		t.Errorf("second sign --all: exit %d, stderr %q", r.code, r.stderr)
	}
	r = sign("--label", "cm-aaaaaaaaaaaaaaaaaaaaaaaaaa")
	if r.code != exitFailure || !strings.Contains(r.stdout, "message UID 1 skipped") || !strings.Contains(r.stderr, "no certified-item stubs found with label cm-aaaaaaaaaaaaaaaaaaaaaaaaaa") {
		t.Errorf("sign --label of a non-stub: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	srv.stop(t)

	// Both items were released into the INBOX beside the untouched
	// ordinary messages; no stub is left.
	st := openStore(t, dir)
	got := inbox(t, st, "alice")
	all := ""
	for _, m := range got {
		all += string(m) + "\n----\n"
	}
	if len(got) != 4 || !strings.Contains(all, fake) || !strings.Contains(all, bogusRequest) ||
		!strings.Contains(all, bodies[0]) || !strings.Contains(all, bodies[1]) || strings.Contains(all, "Certified-Hash:") {
		t.Errorf("INBOX after signing (%d messages):\n%s", len(got), all)
	}
}
