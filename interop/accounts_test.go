package interop

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// lmtpDeliver hands msg to the server over LMTP with go-smtp's client, as
// an MTA would, and fails unless every recipient is accepted.
func (s *server) lmtpDeliver(t *testing.T, from, to, msg string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.lmtp, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("mta.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		t.Fatalf("RCPT %s: %v", to, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		t.Fatalf("DATA for %s: %v", to, err)
	}
	c.Quit()
}

// stubLabels are the labels of the stubs among msgs.
func stubLabels(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		if l := labelRE.FindStringSubmatch(m); l != nil {
			out = append(out, l[1])
		}
	}
	return out
}

// verifyEvidence writes the evidence bundle of label and verifies it
// offline against the gateway key; it returns the verifier's account.
func (s *server) verifyEvidence(t *testing.T, label string) string {
	t.Helper()
	dir := t.TempDir()
	bundle, key := filepath.Join(dir, "bundle.json"), filepath.Join(dir, "gateway.pem")
	s.run("", "evidence", label, "-o", bundle, "--gateway-key-out", key, "--data", s.data)
	return s.run("", "verify", bundle, "--gateway-key", key)
}

// TestExternalAlternateGetsStubByMail: an originator-specified alternate in
// an alternate domain, carol@partner.example, is somebody else's carol. The
// stub goes to that address through the relay, the local account carol
// gets nothing (no stub, so nothing to acknowledge and no M), and the
// evidence and the sender's notice name the full external address.
func TestExternalAlternateGetsStubByMail(t *testing.T) {
	sink, relay := startSink(t)
	conf := filepath.Join(t.TempDir(), "certmail.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`hostname = "mail.example.org"
domains = ["example.org"]
[certified]
alternate_domains = ["partner.example"]
[relay]
addr = %q
tls = "none"
`, relay)), 0o600)
	s := startServer(t, "--config", conf)
	s.addUser("bob", "bob-pw")
	s.addUser("carol", "carol-pw")
	// Forwarded halfway to the deadline.
	s.lmtpDeliver(t, "clerk@court.example", "bob@example.org",
		certifiedMessage("Certified-Delivery: deadline=6s; alternate=carol@partner.example\r\n", "secret for bob"))
	bobMsgs, _ := mailboxMessages(t, s.imap, "bob", "bob-pw", "INBOX")
	labels := stubLabels(bobMsgs)
	if len(labels) != 1 {
		t.Fatalf("bob has %d stubs", len(labels))
	}
	label := labels[0]

	stub := sink.waitFor(t, "the stub for carol@partner.example", func(m sinkMsg) bool {
		return strings.Join(m.to, ",") == "carol@partner.example" && bytes.Contains(m.data, []byte("Certified-Label: "+label))
	})
	if bytes.Contains(stub.data, []byte("secret for bob")) {
		t.Fatalf("the external stub carries M:\n%s", stub.data)
	}
	if !bytes.Contains(stub.data, []byte("To: <carol@partner.example>")) && !bytes.Contains(stub.data, []byte("To: carol@partner.example")) {
		t.Errorf("the external stub is not addressed to carol@partner.example:\n%s", stub.data)
	}
	sink.waitFor(t, "the sender's forward notice", func(m sinkMsg) bool {
		return strings.Join(m.to, ",") == "clerk@court.example" && bytes.Contains(m.data, []byte("forwarded to carol@partner.example"))
	})
	if out := s.verifyEvidence(t, label); !strings.Contains(out, "stub forwarded to carol@partner.example from bob") {
		t.Fatalf("the evidence does not name the external alternate:\n%s", out)
	}
	// The local carol has nothing: no stub to acknowledge, no M, then or
	// after the deadline.
	time.Sleep(4 * time.Second)
	carolMsgs, _ := mailboxMessages(t, s.imap, "carol", "carol-pw", "INBOX")
	if len(carolMsgs) != 0 {
		t.Fatalf("the local carol got %d messages:\n%s", len(carolMsgs), strings.Join(carolMsgs, "\n---\n"))
	}
	if out := s.verifyEvidence(t, label); strings.Contains(out, "delivered to carol\n") || strings.Contains(out, "forwarded to carol ") {
		t.Fatalf("the evidence names the local carol:\n%s", out)
	}
}
