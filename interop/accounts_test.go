package interop

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"certmail/codclient"
	"certmail/receipts"
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
trusted_lmtp_clients = ["127.0.0.1"]
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

// stubsOf logs in as user and returns the certified stubs in its INBOX,
// with the COD request each carries.
func stubsOf(t *testing.T, addr, user, pw string) []codclient.Stub {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	found, err := codclient.FindStubs(c, "INBOX", "")
	if err != nil {
		t.Fatal(err)
	}
	return found.Stubs
}

// stubsFor returns the stubs in user's INBOX of items whose recipient is
// recipient.
func stubsFor(t *testing.T, addr, user, pw, recipient string) []codclient.Stub {
	t.Helper()
	var out []codclient.Stub
	for _, st := range stubsOf(t, addr, user, pw) {
		if st.Request.Recipient == recipient {
			out = append(out, st)
		}
	}
	return out
}

// mailboxCounts returns the number of messages in each of user's
// mailboxes.
func mailboxCounts(t *testing.T, addr, user, pw string) map[string]uint32 {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	boxes, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]uint32)
	for _, b := range boxes {
		if b.Status == nil || b.Status.NumMessages == nil {
			t.Fatalf("LIST-STATUS gave no count for %s", b.Mailbox)
		}
		out[b.Mailbox] = *b.Status.NumMessages
	}
	return out
}

// postCOD hands a COD in over HTTP as user and returns the status.
func (s *server) postCOD(t *testing.T, user, pw, label, cod string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+s.http+"/v1/items/"+label+"/cod", strings.NewReader(cod))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestDeletedAccountNameStartsClean: `user del` ends everything the
// account owned, and a new account of the same name starts with nothing
// of it. The old bob had a pending item (deemed delivery on expiry, its
// forward timer running), an item forwarded to the desk dave, a stub of
// alice's item forwarded to him, his own registered key and a forwarding
// policy. After the deletion the senders got reports of non-delivery with
// evidence; the new bob has no mail (none arrives when the old timers
// would have fired), cannot acknowledge any old label with a key of his
// own, inherits neither keys nor policy; dave's stub is withdrawn.
func TestDeletedAccountNameStartsClean(t *testing.T) {
	sink, relay := startSink(t)
	conf := filepath.Join(t.TempDir(), "certmail.toml")
	// The LMTP client (this test, on 127.0.0.1) is the trusted MTA: its
	// senders get notices by mail.
	os.WriteFile(conf, []byte(fmt.Sprintf(`hostname = "mail.example.org"
domains = ["example.org"]
[certified]
trusted_lmtp_clients = ["127.0.0.1"]
[relay]
addr = %q
tls = "none"
`, relay)), 0o600)
	s := startServer(t, "--config", conf)
	for _, u := range []string{"alice", "bob", "dave"} {
		s.addUser(u, u+"-pw")
	}
	keys := t.TempDir()
	s.run("", "keygen", "--out", filepath.Join(keys, "old.pem"))
	s.run("", "key", "register", "--user", "bob", "--pubkey", filepath.Join(keys, "old.pem.pub"), "--data", s.data)
	s.run("", "policy", "set", "alice", "--forward-unread-after", "1s", "--to", "bob", "--certified-only", "--data", s.data)
	s.run("", "policy", "set", "bob", "--forward-unread-after", "3s", "--to", "dave", "--certified-only", "--data", s.data)

	start := time.Now()
	s.lmtpDeliver(t, "clerk@court.example", "alice@example.org",
		certifiedMessage("Certified-Delivery: deadline=1h\r\n", "for alice forwarded to bob"))
	s.lmtpDeliver(t, "clerk@court.example", "bob@example.org",
		certifiedMessage("Certified-Delivery: deadline=15s; on-expiry=deemed-delivery\r\n", "for bob forwarded to dave"))
	s.lmtpDeliver(t, "friend@example.net", "bob@example.org", plainMessage("plain-1", "plain mail for the old bob"))
	// bob's policy may also pass alice's item on to dave (its stub is
	// unread in bob's INBOX too); whether that happens before the
	// deletion depends on the timer ticks, so only the old bob's own
	// items count at dave.
	waitUntil(t, "the forwards to bob and to dave", 15*time.Second, func() bool {
		return len(stubsOf(t, s.imap, "bob", "bob-pw")) == 2 && len(stubsFor(t, s.imap, "dave", "dave-pw", "bob")) == 1
	})
	// One more, pending, whose forward to dave (3s) would come after the
	// deletion, and whose deadline brings deemed delivery.
	s.lmtpDeliver(t, "clerk@court.example", "bob@example.org",
		certifiedMessage("Certified-Delivery: deadline=8s; on-expiry=deemed-delivery\r\n", "for bob pending"))
	old := stubsOf(t, s.imap, "bob", "bob-pw")
	if len(old) != 3 {
		t.Fatalf("the old bob has %d stubs, want 3", len(old))
	}
	ownLabels := map[string]bool{} // the items bob was the recipient of
	for _, st := range old {
		if st.Request.Recipient == "bob" {
			ownLabels[st.Request.Label] = true
		}
	}
	if len(ownLabels) != 2 {
		t.Fatalf("the old bob is the recipient of %d items, want 2", len(ownLabels))
	}

	s.run("", "user", "del", "bob", "--data", s.data)
	s.addUser("bob", "new-bob-pw")
	s.run("", "keygen", "--out", filepath.Join(keys, "new.pem"))
	s.run("", "key", "register", "--user", "bob", "--pubkey", filepath.Join(keys, "new.pem.pub"), "--data", s.data)
	pem, err := os.ReadFile(filepath.Join(keys, "new.pem"))
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := receipts.ParsePrivateKeyPEM(pem)
	if err != nil {
		t.Fatal(err)
	}

	// The new bob, with a key of his own, cannot acknowledge any of the
	// old owner's labels: not his items, not alice's that was forwarded
	// to the old bob.
	for _, st := range old {
		st.Request.Recipient = "bob"
		cod, err := codclient.Sign(newKey, st, receipts.DecisionCOD, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if code, body := s.postCOD(t, "bob", "new-bob-pw", st.Request.Label, cod); code == http.StatusOK {
			t.Fatalf("the new bob acknowledged the old bob's item %s: %s", st.Request.Label, body)
		}
	}
	if out := s.run("", "key", "list", "--user", "bob", "--data", s.data); strings.Count(strings.TrimSpace(out), "\n") != 1 {
		t.Errorf("the new bob should list his two keys (gateway-held and his own), got:\n%s", out)
	}
	if out := s.run("", "policy", "show", "bob", "--data", s.data); strings.Contains(out, "dave") {
		t.Errorf("the new bob inherited the old bob's policy:\n%s", out)
	}

	// Each sender is told, with the evidence, that its item to the old
	// bob was not delivered.
	for label := range ownLabels {
		n := sink.waitFor(t, "the report of non-delivery of "+label, func(m sinkMsg) bool {
			return strings.Join(m.to, ",") == "clerk@court.example" && bytes.Contains(m.data, []byte("Certified item "+label+": not delivered"))
		})
		if !bytes.Contains(n.data, []byte("ContentConsignmentFailure.jws")) {
			t.Errorf("the report of non-delivery of %s lacks its evidence:\n%s", label, n.data)
		}
		if out := s.verifyEvidence(t, label); !strings.Contains(out, "ContentConsignmentFailure") || !strings.Contains(out, "account bob was deleted") {
			t.Errorf("the evidence of %s does not record the non-delivery:\n%s", label, out)
		}
	}

	// Drive the timers: past every deadline and forward the old items
	// had, nothing has reached the new bob or the desk.
	time.Sleep(time.Until(start.Add(18 * time.Second)))
	for box, n := range mailboxCounts(t, s.imap, "bob", "new-bob-pw") {
		if n != 0 {
			msgs, _ := mailboxMessages(t, s.imap, "bob", "new-bob-pw", box)
			t.Errorf("the new bob has %d messages in %s:\n%s", n, box, strings.Join(msgs, "\n---\n"))
		}
	}
	if st := stubsFor(t, s.imap, "dave", "dave-pw", "bob"); len(st) != 0 {
		t.Errorf("dave still holds %d stubs of the old bob's items", len(st))
	}
	// alice's item is still hers to acknowledge.
	if st := stubsOf(t, s.imap, "alice", "alice-pw"); len(st) != 1 {
		t.Errorf("alice holds %d stubs, want her own one", len(st))
	}
}
