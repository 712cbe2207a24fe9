package interop

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpSink is a real SMTP server that records what the relay hands it.
type smtpSink struct {
	mu   sync.Mutex
	msgs []sinkMsg
}

type sinkMsg struct {
	from string
	to   []string
	data []byte
}

func (k *smtpSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: k}, nil }

type sinkSession struct {
	sink *smtpSink
	msg  sinkMsg
}

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error { s.msg.from = from; return nil }
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = b
	s.sink.mu.Lock()
	s.sink.msgs = append(s.sink.msgs, s.msg)
	s.sink.mu.Unlock()
	return nil
}
func (s *sinkSession) Reset()        { s.msg = sinkMsg{} }
func (s *sinkSession) Logout() error { return nil }

func (k *smtpSink) waitFor(t *testing.T, what string, match func(sinkMsg) bool) sinkMsg {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		k.mu.Lock()
		for _, m := range k.msgs {
			if match(m) {
				k.mu.Unlock()
				return m
			}
		}
		k.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the relay never got %s", what)
	return sinkMsg{}
}

func startSink(t *testing.T) (*smtpSink, string) {
	t.Helper()
	sink := &smtpSink{}
	srv := smtp.NewServer(sink)
	srv.Domain = "sink.example"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sink, ln.Addr().String()
}

// TestSenderNotices checks that the sender of a certified item gets the
// certificate of posting and then the COD and report of delivery, through
// a real SMTP relay.
func TestSenderNotices(t *testing.T) {
	py := requireTool(t, "python3")
	requireTool(t, "swaks")
	sink, relay := startSink(t)
	conf := filepath.Join(t.TempDir(), "certmail.toml")
	// swaks, the trusted submission MTA here, connects from 127.0.0.1.
	os.WriteFile(conf, []byte(fmt.Sprintf("hostname = \"mail.example.org\"\n[relay]\naddr = %q\ntls = \"none\"\nfrom = \"certmail <postmaster@example.org>\"\n"+
		"[certified]\ntrusted_lmtp_clients = [\"127.0.0.1\"]\n", relay)), 0o600)
	s := startServer(t, "--config", conf)
	s.addUser("dora", "dora-pw")
	if out, err := s.lmtpSend(t, "dora@example.org", certifiedMessage("Certified-Delivery: deadline=24h\r\n", "notice body")); err != nil {
		t.Fatalf("certified delivery: %v\n%s", err, out)
	}
	cop := sink.waitFor(t, "the certificate of posting", func(m sinkMsg) bool {
		return bytes.Contains(m.data, []byte("Certificate of posting")) && strings.Join(m.to, ",") == "clerk@court.example"
	})
	if !bytes.Contains(cop.data, []byte("SubmissionAcceptance.jws")) || !bytes.Contains(cop.data, []byte("application/jose")) {
		t.Fatalf("COP notice lacks the COP:\n%s", cop.data)
	}
	host, port, _ := net.SplitHostPort(s.imap)
	runTool(t, nil, py, "-c", `
import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
m.login("dora", "dora-pw")
m.select("INBOX")
typ, data = m.uid("MOVE", "1", "Acknowledge")
assert typ == "OK", data
`, host, port)
	rod := sink.waitFor(t, "the report of delivery", func(m sinkMsg) bool {
		return bytes.Contains(m.data, []byte("Report of delivery"))
	})
	for _, want := range []string{"cod.jws", "ContentHandover.jws", "ConsignmentAcceptance.jws", "acknowledged by dora"} {
		if !bytes.Contains(rod.data, []byte(want)) {
			t.Fatalf("report of delivery lacks %q:\n%s", want, rod.data)
		}
	}
}

// startSinkAt starts the sink on a given address (to bring a relay "up").
func startSinkAt(t *testing.T, addr string) *smtpSink {
	t.Helper()
	sink := &smtpSink{}
	srv := smtp.NewServer(sink)
	srv.Domain = "sink.example"
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sink
}

// TestRelayOutageRestartAndCheck posts a certified item while the relay is
// down, restarts the server before the recipient signs, brings the relay
// up, and checks that every notice arrives once, that the attached records
// verify with the gateway key `certmail key show --gateway` prints, and
// that `certmail check` verifies the released message against its H(L,r,M).
func TestRelayOutageRestartAndCheck(t *testing.T) {
	py := requireTool(t, "python3")
	requireTool(t, "swaks")
	relay := freeAddr(t) // nothing listens yet: the relay is down
	conf := filepath.Join(t.TempDir(), "certmail.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("hostname = \"mail.example.org\"\n[relay]\naddr = %q\ntls = \"none\"\nretry_after = \"1s\"\n"+
		"[certified]\ntrusted_lmtp_clients = [\"127.0.0.1\"]\n", relay)), 0o600)
	s := startServer(t, "--config", conf)
	s.addUser("erin", "erin-pw")
	if out, err := s.lmtpSend(t, "erin@example.org", certifiedMessage("Certified-Delivery: deadline=24h\r\n", "outage body")); err != nil {
		t.Fatalf("certified delivery: %v\n%s", err, out)
	}
	time.Sleep(1500 * time.Millisecond) // at least one failed attempt

	// Restart between posting and signing.
	s.stop()
	s.start()
	sink := startSinkAt(t, relay)

	host, port, _ := net.SplitHostPort(s.imap)
	runTool(t, nil, py, "-c", `
import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
m.login("erin", "erin-pw")
m.select("INBOX")
typ, data = m.uid("SEARCH", None, "HEADER", "Certified-Label", '""')
uid = data[0].split()[0]
typ, data = m.uid("MOVE", uid, "Acknowledge")
assert typ == "OK", data
`, host, port)
	sink.waitFor(t, "the certificate of posting", func(m sinkMsg) bool { return bytes.Contains(m.data, []byte("Certificate of posting")) })
	rod := sink.waitFor(t, "the report of delivery", func(m sinkMsg) bool { return bytes.Contains(m.data, []byte("Report of delivery")) })
	time.Sleep(3 * time.Second) // give duplicates a chance to show
	sink.mu.Lock()
	counts := map[string]int{}
	for _, m := range sink.msgs {
		for _, subj := range []string{"Certificate of posting", "Report of delivery"} {
			if bytes.Contains(m.data, []byte(subj)) {
				counts[subj]++
			}
		}
	}
	sink.mu.Unlock()
	if counts["Certificate of posting"] != 1 || counts["Report of delivery"] != 1 {
		t.Fatalf("notices arrived %v times, want each once", counts)
	}

	// The attached records verify with the published gateway key.
	pemOut := s.run("", "key", "show", "--gateway", "--data", s.data)
	verifyNoticeRecords(t, rod.data, pemOut)

	label := regexpLabel.FindString(string(rod.data))
	if label == "" {
		t.Fatalf("no label in the report:\n%s", rod.data)
	}
	out := s.run("", "check", "--label", label, "--data", s.data)
	if !strings.Contains(out, "OK: the released message is the one acknowledged") {
		t.Fatalf("certmail check:\n%s", out)
	}
}

// TestDeadlineExpiry lets two items pass short deadlines on the real
// server: non-delivery withholds M and reports it; deemed delivery
// releases M. The sender hears of both.
func TestDeadlineExpiry(t *testing.T) {
	requireTool(t, "swaks")
	sink, relay := startSink(t)
	conf := filepath.Join(t.TempDir(), "certmail.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("hostname = \"mail.example.org\"\n[relay]\naddr = %q\ntls = \"none\"\n"+
		"[certified]\ntrusted_lmtp_clients = [\"127.0.0.1\"]\n", relay)), 0o600) // swaks, the trusted MTA
	s := startServer(t, "--config", conf)
	s.addUser("gina", "gina-pw")
	for _, m := range []string{
		certifiedMessage("Certified-Delivery: deadline=2s; on-expiry=non-delivery\r\n", "withheld body"),
		certifiedMessage("Certified-Delivery: deadline=2s; on-expiry=deemed-delivery\r\n", "deemed body"),
	} {
		if out, err := s.lmtpSend(t, "gina@example.org", m); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	nd := sink.waitFor(t, "the report of non-delivery", func(m sinkMsg) bool {
		return bytes.Contains(m.data, []byte("report of non-delivery"))
	})
	if !bytes.Contains(nd.data, []byte("ContentConsignmentFailure.jws")) {
		t.Fatalf("non-delivery notice lacks its record:\n%s", nd.data)
	}
	sink.waitFor(t, "the deemed-delivery notice", func(m sinkMsg) bool {
		return bytes.Contains(m.data, []byte("deemed delivered")) && bytes.Contains(m.data, []byte("AcceptanceRejectionExpiry.jws"))
	})
	bodies := inboxBodies(t, s.imap, "gina", "gina-pw")
	if len(bodies) != 1 || !strings.Contains(bodies[0], "deemed body") {
		t.Fatalf("after the deadlines INBOX should hold only the deemed-delivered M:\n%s", strings.Join(bodies, "\n---\n"))
	}
}
