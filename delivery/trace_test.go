package delivery

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"certmail/mailbox"
	"certmail/metrics"
)

// certifyAlice certifies alice's copies only (an operator rule on one
// account), holding M in her "Held" mailbox.
type certifyAlice struct{ certifyAll }

func (c *certifyAlice) Check(raw []byte, sender, account string) (bool, error) {
	return account == "alice", nil
}

// lmtpSend delivers msg from sender to rcpts over a real LMTP connection
// and wants 250 for each.
func lmtpSend(t *testing.T, addr, sender string, rcpts []string, msg []byte) {
	t.Helper()
	c := dialLMTP(t, addr)
	if err := c.Mail(sender, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(msg)
	resps, err := w.CloseWithLMTPResponse()
	if err != nil {
		t.Fatalf("data: %v", err)
	}
	for _, r := range rcpts {
		if resps[r] == nil {
			t.Fatalf("%s: %+v", r, resps[r])
		}
	}
}

// LMTP prepends Return-Path, and Delivered-To when the message is stored
// for one recipient, as Dovecot's LMTP does; a certified M is stored as
// sent, and `certmail deliver` (Deliver, no Trace) adds nothing.
func TestLMTPTraceFields(t *testing.T) {
	st := openStore(t, "alice", "bob")
	if err := st.Update(func(tx *mailbox.Tx) error {
		_, err := tx.CreateMailbox("alice", mailbox.NewMailbox{Name: "Held"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	addr, d := startLMTP(t, st, Options{}, LMTPOptions{})
	msg := []byte("Subject: trace\r\nMessage-ID: <m1@example.net>\r\n\r\nbody\r\n")
	last := func(acct string) string {
		t.Helper()
		m := inboxRaw(t, st, acct)
		if len(m) == 0 {
			t.Fatalf("%s's INBOX is empty", acct)
		}
		return string(m[len(m)-1])
	}

	lmtpSend(t, addr, "s@example.net", []string{"Alice@Example.org"}, msg)
	if got, want := last("alice"), "Return-Path: <s@example.net>\r\nDelivered-To: Alice@Example.org\r\n"+string(msg); got != want {
		t.Errorf("one recipient:\n%q\nwant\n%q", got, want)
	}
	lmtpSend(t, addr, "", []string{"bob@example.org"}, msg)
	if got, want := last("bob"), "Return-Path: <>\r\nDelivered-To: bob@example.org\r\n"+string(msg); got != want {
		t.Errorf("null sender:\n%q\nwant\n%q", got, want)
	}
	// Two recipients share the stored bytes: no Delivered-To naming the
	// other (a Bcc recipient, say).
	lmtpSend(t, addr, "s@example.net", []string{"alice@example.org", "bob@example.org"}, msg)
	for _, acct := range []string{"alice", "bob"} {
		if got, want := last(acct), "Return-Path: <s@example.net>\r\n"+string(msg); got != want {
			t.Errorf("%s, two recipients:\n%q\nwant\n%q", acct, got, want)
		}
	}
	if errs := d.Deliver(context.Background(), []string{"bob"}, "", msg); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if got := last("bob"); got != string(msg) {
		t.Errorf("Deliver (a pipe transport, whose MTA writes the fields): %q", got)
	}

	// A message written with bare LFs gets fields ending the same way.
	lf := []byte("Subject: lf\n\nbody\n")
	if errs := d.DeliverEnvelope(context.Background(), Envelope{Sender: "s@example.net", Trace: true}, []string{"bob"}, "", lf); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if got, want := last("bob"), "Return-Path: <s@example.net>\nDelivered-To: bob@"+d.Addresses().Primary()+"\n"+string(lf); got != want {
		t.Errorf("bare LF message:\n%q\nwant\n%q", got, want)
	}

	// Certified for alice, ordinary for bob: M is held as sent (H(L,r,M)
	// is over those bytes), bob's copy is the only ordinary one.
	c := &certifyAlice{}
	addr2, _ := startLMTP(t, st, Options{Certifier: c}, LMTPOptions{})
	lmtpSend(t, addr2, "s@example.net", []string{"alice@example.org", "bob@example.org"}, msg)
	if len(c.seen) != 1 || !bytes.Equal(c.seen[0].Raw, msg) {
		t.Fatalf("certifier saw %+v", c.seen)
	}
	mb, err := st.Mailbox("alice", "Held")
	if err != nil {
		t.Fatal(err)
	}
	held, err := st.Messages("alice", mb.ID)
	if err != nil || len(held) != 1 {
		t.Fatalf("Held: %d %v", len(held), err)
	}
	if raw, err := st.Raw(held[0].Blob); err != nil || !bytes.Equal(raw, msg) {
		t.Errorf("certified M stored as %q (%v), want the bytes sent", raw, err)
	}
	if got, want := last("bob"), "Return-Path: <s@example.net>\r\nDelivered-To: bob@example.org\r\n"+string(msg); got != want {
		t.Errorf("bob beside a certified copy:\n%q\nwant\n%q", got, want)
	}
}

// lockedBuffer collects log output from concurrent goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// One log line per recipient of each delivery: sender, recipient,
// Message-ID, size, mailbox and result; and the LMTP metrics by result.
func TestDeliveryLogAndMetrics(t *testing.T) {
	st := openStore(t, "alice", "bob")
	if err := st.Update(func(tx *mailbox.Tx) error {
		_, err := tx.CreateMailbox("alice", mailbox.NewMailbox{Name: "Held"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	d := NewDeliverer(st, Options{Certifier: &certifyAlice{}, MaxMessageBytes: 1000,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv := NewLMTPServer(d, LMTPOptions{Logger: quietLogger(), Metrics: m})
	addr := serveLMTP(t, srv, d)

	msg := []byte("Subject: log\r\nMessage-ID: <m2@example.net>\r\n\r\nbody\r\n")
	lmtpSend(t, addr, "s@example.net", []string{"alice@example.org", "bob@example.org"}, msg)
	c := dialLMTP(t, addr)
	if err := c.Mail("s@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("nobody@example.org", nil); err == nil {
		t.Fatal("unknown recipient accepted")
	}
	if errs := d.Deliver(context.Background(), []string{"bob"}, "", bytes.Repeat([]byte("x"), 2000)); errs[0] == nil {
		t.Fatal("too large accepted")
	}

	text := logs.String()
	size := len(msg)
	for _, want := range []string{
		`msg=delivered rcpt=bob@example.org account=bob from=s@example.net message_id=<m2@example.net> size=` + strconv.Itoa(size) + ` remote=127.0.0.1:`,
		`mailbox=INBOX result=stored`,
		`msg=delivered rcpt=alice@example.org account=alice from=s@example.net message_id=<m2@example.net> size=` + strconv.Itoa(size),
		`mailbox="" result=certified`,
		`msg="not delivered" rcpt=bob account="" from="" message_id="" size=2000 result=rejected err=`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "msg=delivered"); n != 2 {
		t.Errorf("%d delivered lines, want one per recipient (2):\n%s", n, text)
	}

	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`certmail_lmtp_deliveries_total{result="delivered"} 2`,
		`certmail_lmtp_deliveries_total{result="rejected"} 1`,
		`certmail_lmtp_deliveries_total{result="deferred"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(string(body), "certmail_lmtp"))
		}
	}
}

func serveLMTP(t *testing.T, srv *LMTPServer, d *Deliverer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		d.Close(context.Background())
	})
	return ln.Addr().String()
}

func grepLines(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
