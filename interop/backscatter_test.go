package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
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
)

// lmtpFrom delivers msg over LMTP from the local address src (any address
// of 127.0.0.0/8 works on Linux), as an MTA at that address would.
func lmtpFrom(t *testing.T, lmtpAddr, src, from, to, msg string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", lmtpAddr)
	if err != nil {
		t.Fatalf("LMTP from %s: %v", src, err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("mta.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		t.Fatalf("LMTP from %s: %v", src, err)
	}
	c.Quit()
}

// Issue 11 item 11: certified notices went to whatever envelope sender or
// From a message named: backscatter to a third party when it is forged.
// Now only senders something vouches for get mail: an LMTP client listed
// in certified.trusted_lmtp_clients (a submission MTA), or an API token's
// configured senders. Everyone else's items keep their evidence,
// retrievable by label, and the sink sees nothing for them.
func TestNoticesOnlyToAuthenticatedSenders(t *testing.T) {
	sink, relay := startSink(t)
	conf := filepath.Join(t.TempDir(), "certmail.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("hostname = \"mail.example.org\"\n[relay]\naddr = %q\ntls = \"none\"\nretry_after = \"1s\"\n"+
		"[certified]\ntrusted_lmtp_clients = [\"127.0.0.2\"]\n", relay)), 0o600)
	s := startServer(t, "--config", conf)
	s.waitListening(s.http)
	s.addUser("dora", "dora-pw")

	// Untrusted: mail from the Internet through the inbound MTA at
	// 127.0.0.1, with a forged envelope sender and From.
	forged := strings.ReplaceAll(certifiedMessage("Certified-Delivery: deadline=24h\r\n", "forged body"), "clerk@court.example", "victim@forged.example")
	lmtpFrom(t, s.lmtp, "127.0.0.1", "victim@forged.example", "dora@example.org", forged)
	// Trusted: the submission MTA at 127.0.0.2.
	lmtpFrom(t, s.lmtp, "127.0.0.2", "clerk@court.example", "dora@example.org", certifiedMessage("Certified-Delivery: deadline=24h\r\n", "trusted body"))

	// The API: a token that owns owner@acme.example.
	token := strings.TrimSpace(certmailOut(t, "token", "add", "acme", "--sender", "owner@acme.example", "--data", s.data))
	submit := func(sender string) (label string, mailed bool) {
		t.Helper()
		req, _ := json.Marshal(map[string]any{"recipients": []string{"dora"}, "sender": sender,
			"message": "From: " + sender + "\r\nSubject: API item\r\n\r\nfrom " + sender + "\r\n"})
		status, body := httpDo(t, "POST", "http://"+s.http+"/v1/items", token, req)
		var out struct {
			Items []struct {
				Label         string `json:"label"`
				NoticesMailed bool   `json:"notices_mailed"`
			} `json:"items"`
		}
		if status != http.StatusCreated || json.Unmarshal(body, &out) != nil || len(out.Items) != 1 {
			t.Fatalf("submit as %s: %d %s", sender, status, body)
		}
		return out.Items[0].Label, out.Items[0].NoticesMailed
	}
	if _, mailed := submit("Owner@acme.example"); !mailed {
		t.Error("the token's own sender: notices_mailed false")
	}
	apiForged, mailed := submit("victim2@forged.example")
	if mailed {
		t.Error("a sender the token does not own: notices_mailed true")
	}

	// The trusted paths get their certificates of posting.
	to := func(addr string) func(sinkMsg) bool {
		return func(m sinkMsg) bool {
			return bytes.Contains(m.data, []byte("Certificate of posting")) && strings.EqualFold(strings.Join(m.to, ","), addr)
		}
	}
	sink.waitFor(t, "the COP for the trusted LMTP client's sender", to("clerk@court.example"))
	sink.waitFor(t, "the COP for the token's sender", to("Owner@acme.example"))
	time.Sleep(2 * time.Second) // the outbox retries every second: give strays time to show
	sink.mu.Lock()
	for _, m := range sink.msgs {
		if strings.Contains(strings.Join(m.to, ","), "forged.example") {
			t.Errorf("a notice went to a forged sender: to %v\n%s", m.to, m.data)
		}
	}
	sink.mu.Unlock()

	// The forged items' evidence is there, by label: over the CLI for
	// the LMTP one (its label is on the recipient's stub), over the API
	// for the token's.
	lmtpForged := stubLabelFrom(t, s.imap, "dora", "dora-pw", "victim@forged.example")
	var bundle struct {
		Label   string            `json:"label"`
		Records []json.RawMessage `json:"records"`
	}
	out := certmailOut(t, "evidence", lmtpForged, "--data", s.data)
	if err := json.Unmarshal([]byte(out), &bundle); err != nil || bundle.Label != lmtpForged || len(bundle.Records) < 2 {
		t.Errorf("evidence %s: %v %.300s", lmtpForged, err, out)
	}
	if status, body := httpDo(t, "GET", "http://"+s.http+"/v1/items/"+apiForged+"/evidence", token, nil); status != 200 {
		t.Errorf("API evidence of %s: %d %s", apiForged, status, body)
	}
	status, body := httpDo(t, "GET", "http://"+s.http+"/v1/items/"+apiForged, token, nil)
	if status != 200 || bytes.Contains(body, []byte("sender_auth")) {
		t.Errorf("API item %s: %d %s (want no sender_auth)", apiForged, status, body)
	}
}

// stubLabelFrom finds the Certified-Label of the stub in user's INBOX that
// names sender.
func stubLabelFrom(t *testing.T, addr, user, pw, sender string) string {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	crit := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Certified-Label"}}, Text: []string{sender}}
	data, err := c.UIDSearch(crit, nil).Wait()
	if err != nil || len(data.AllUIDs()) != 1 {
		t.Fatalf("stub from %s: %v %v", sender, data, err)
	}
	bs := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Certified-Label"}, Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(data.AllUIDs()...), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{bs}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetching the stub: %v", err)
	}
	for _, v := range msgs[0].BodySection {
		if _, l, ok := strings.Cut(string(v.Bytes), "Certified-Label:"); ok {
			return strings.TrimSpace(l)
		}
	}
	t.Fatal("the stub has no Certified-Label")
	return ""
}
