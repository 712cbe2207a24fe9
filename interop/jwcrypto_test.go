package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// debianPython returns a python3 that has jwcrypto: Debian's own
// /usr/bin/python3 first (a pyenv or venv python on PATH does not see
// python3-jwcrypto). It fails the test, never skips, when there is none.
func debianPython(t *testing.T) string {
	t.Helper()
	var candidates []string
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		candidates = append(candidates, "/usr/bin/python3")
	}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if exec.Command(p, "-c", "import jwcrypto.jws, jwcrypto.jwk, cryptography").Run() == nil {
			return p
		}
	}
	t.Fatalf("no python3 with jwcrypto (tried %v); run `make test-deps` (apt-get install python3-jwcrypto)", candidates)
	return ""
}

// certmailOut runs the certmail binary and returns its stdout, failing on
// a non-zero exit.
func certmailOut(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(certmailBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("certmail %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// httpDo sends a request to the server's HTTP API and returns the status
// and body.
func httpDo(t *testing.T, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestEvidenceWithJWCrypto is the sender's story end to end: with nothing
// but an API token (made while the server runs) the sender submits over
// HTTP; the recipient acknowledges by moving the stub to Acknowledge over
// IMAP; the sender fetches the bundle and the gateway key over HTTP; the
// bundle verifies offline both with `certmail verify` and with a script
// that uses only python3-jwcrypto and hashlib (docs/verify.md); tampered
// copies fail both.
func TestEvidenceWithJWCrypto(t *testing.T) {
	python := debianPython(t)
	s := startServer(t)
	s.waitListening(s.http)
	s.addUser("alice", "alice-pw")
	token := strings.TrimSpace(certmailOut(t, "token", "add", "acme", "--data", s.data))
	if !strings.HasPrefix(token, "cmk_") {
		t.Fatalf("token add printed %q", token)
	}
	base := "http://" + s.http
	msg := "From: Court Clerk <clerk@court.example>\r\nTo: alice@example.org\r\nSubject: Summons\r\n" +
		"Message-ID: <jwcrypto@court.example>\r\n\r\nYou are summoned; case 4711.\r\n"

	req, _ := json.Marshal(map[string]any{"message": msg, "recipients": []string{"alice@example.org"}, "deadline": "2h"})
	status, body := httpDo(t, "POST", base+"/v1/items", token, req)
	if status != http.StatusCreated {
		t.Fatalf("submit: %d %s", status, body)
	}
	var sub struct {
		Items []struct {
			Label string `json:"label"`
			COP   string `json:"cop"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &sub); err != nil || len(sub.Items) != 1 {
		t.Fatalf("submit answer: %s %v", body, err)
	}
	label := sub.Items[0].Label

	// The recipient acknowledges with an IMAP client, nothing else.
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
	if _, err := c.Move(imap.SeqSetNum(1), "Acknowledge").Wait(); err != nil {
		t.Fatalf("MOVE the stub to Acknowledge: %v", err)
	}
	c.Logout().Wait()

	status, body = httpDo(t, "GET", base+"/v1/items/"+label, token, nil)
	var item struct {
		State   string            `json:"state"`
		History []json.RawMessage `json:"history"`
	}
	if status != 200 || json.Unmarshal(body, &item) != nil || item.State != "released" || len(item.History) != 4 {
		t.Fatalf("item after MOVE: %d %s", status, body)
	}

	dir := t.TempDir()
	bundleFile := filepath.Join(dir, "bundle.json")
	keyFile := filepath.Join(dir, "gateway.pem")
	msgFile := filepath.Join(dir, "m.eml")
	status, bundle := httpDo(t, "GET", base+"/v1/items/"+label+"/evidence", token, nil)
	if status != 200 {
		t.Fatalf("evidence: %d %s", status, bundle)
	}
	status, body = httpDo(t, "GET", base+"/v1/keys", "", nil)
	var keys struct {
		Keys []struct {
			PEM string `json:"pem"`
		} `json:"keys"`
	}
	if status != 200 || json.Unmarshal(body, &keys) != nil || len(keys.Keys) != 1 {
		t.Fatalf("keys: %d %s", status, body)
	}
	os.WriteFile(bundleFile, bundle, 0o644)
	os.WriteFile(keyFile, []byte(keys.Keys[0].PEM), 0o644)
	os.WriteFile(msgFile, []byte(msg), 0o644)
	// The operator's copy of the key is the one the API publishes.
	cliKey := filepath.Join(dir, "cli.pem")
	certmailOut(t, "evidence", "--gateway-key-out", cliKey, "--data", s.data)
	if b, _ := os.ReadFile(cliKey); string(b) != keys.Keys[0].PEM {
		t.Fatalf("certmail evidence --gateway-key-out wrote\n%s\nGET /v1/keys says\n%s", b, keys.Keys[0].PEM)
	}

	out := certmailOut(t, "verify", bundleFile, "--gateway-key", keyFile, "--message", msgFile)
	for _, want := range []string{"VERIFIED: 4 records", "final state released, complete as of ", "SubmissionAcceptance (COP)",
		"ConsignmentAcceptance (COD): alice signed a certificate of delivery", "ContentHandover (ROD)", "The message file matches H(L,r,M)",
		"Complete: the gateway signed at "} {
		if !strings.Contains(out, want) {
			t.Errorf("certmail verify output lacks %q:\n%s", want, out)
		}
	}
	script := filepath.Join("testdata", "verify_jwcrypto.py")
	pyOut, err := exec.Command(python, script, bundleFile, keyFile, msgFile).CombinedOutput()
	if err != nil {
		t.Fatalf("verify_jwcrypto.py: %v\n%s", err, pyOut)
	}
	for _, want := range []string{"OK: 4 records of " + label, "COD signed by alice (gateway-held key)", "message released to alice, with salt r ", "H(L,r,M) matches",
		"head: complete: the gateway signed at "} {
		if !strings.Contains(string(pyOut), want) {
			t.Errorf("verify_jwcrypto.py output lacks %q:\n%s", want, pyOut)
		}
	}

	// Both verifiers refuse tampered evidence.
	var b map[string]any
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	records := b["records"].([]any)
	rec := func(i int) map[string]any { return records[i].(map[string]any) }
	flipped := func() []byte {
		jws := []byte(rec(2)["jws"].(string))
		dot := bytes.LastIndexByte(jws, '.')
		jws[dot+5] ^= 0x01 // a byte of the COD record's signature
		rec(2)["jws"] = string(jws)
		defer func() { json.Unmarshal(bundle, &b); records = b["records"].([]any) }()
		out, _ := json.Marshal(b)
		return out
	}
	reordered := func() []byte {
		records[1], records[2] = records[2], records[1]
		defer func() { json.Unmarshal(bundle, &b); records = b["records"].([]any) }()
		out, _ := json.Marshal(b)
		return out
	}
	// Cut short: without its last record (the ROD), the bundle would show
	// the item acknowledged but not released; only the signed head, which
	// counts 4 records, tells.
	truncated := func() []byte {
		c := map[string]any{}
		for k, v := range b {
			c[k] = v
		}
		c["records"] = records[:len(records)-1]
		out, _ := json.Marshal(c)
		return out
	}
	headless := func() []byte {
		c := map[string]any{}
		for k, v := range b {
			c[k] = v
		}
		delete(c, "head")
		out, _ := json.Marshal(c)
		return out
	}
	for _, c := range []struct {
		name    string
		bundle  []byte
		message string
		want    string // in both verifiers' failure, if set
	}{
		{"flipped byte", flipped(), msg, ""},
		{"reordered", reordered(), msg, ""},
		{"other message", bundle, strings.Replace(msg, "4711", "4712", 1), ""},
		{"truncated", truncated(), msg, "head: the gateway signed 4 records, the bundle has 3"},
		{"head removed", headless(), msg, "head: a version 2 bundle needs the gateway's signed head"},
	} {
		f := filepath.Join(dir, "tampered.json")
		m := filepath.Join(dir, "tampered.eml")
		os.WriteFile(f, c.bundle, 0o644)
		os.WriteFile(m, []byte(c.message), 0o644)
		cmd := exec.Command(certmailBin, "verify", f, "--gateway-key", keyFile, "--message", m)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "FAILED") || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: certmail verify passed, or did not say %q:\n%s", c.name, c.want, out)
		}
		if out, err := exec.Command(python, script, f, keyFile, m).CombinedOutput(); err == nil || !strings.Contains(string(out), "FAIL") || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: verify_jwcrypto.py passed, or did not say %q:\n%s", c.name, c.want, out)
		} else {
			t.Logf("%s: %s", c.name, lastLine(out))
		}
	}

	// A version 1 bundle (no head, as written before heads existed) is
	// refused by certmail verify unless accepted knowingly; then it
	// verifies with both, and both say what it cannot show.
	v1 := map[string]any{}
	for k, v := range b {
		v1[k] = v
	}
	delete(v1, "head")
	v1["version"] = 1
	v1File := filepath.Join(dir, "v1.json")
	data, _ := json.Marshal(v1)
	os.WriteFile(v1File, data, 0o644)
	if err := exec.Command(certmailBin, "verify", v1File, "--gateway-key", keyFile, "--message", msgFile).Run(); err == nil {
		t.Error("certmail verify accepted a version 1 bundle without --allow-incomplete")
	}
	out = certmailOut(t, "verify", v1File, "--gateway-key", keyFile, "--message", msgFile, "--allow-incomplete")
	if !strings.Contains(out, "VERIFIED: 4 records") || !strings.Contains(out, "completeness not shown") {
		t.Errorf("certmail verify of a version 1 bundle:\n%s", out)
	}
	pyOut, err = exec.Command(python, script, v1File, keyFile, msgFile).CombinedOutput()
	if err != nil || !strings.Contains(string(pyOut), "completeness not shown") || !strings.Contains(string(pyOut), "OK: 4 records") {
		t.Errorf("verify_jwcrypto.py of a version 1 bundle: %v\n%s", err, pyOut)
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return fmt.Sprint(lines[len(lines)-1])
}
