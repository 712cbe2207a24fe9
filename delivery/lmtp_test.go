package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"certmail/addressing"
	"certmail/mailbox"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openStore(t testing.TB, accounts ...string) *mailbox.Store {
	t.Helper()
	st, err := mailbox.Open(mailbox.Options{Dir: t.TempDir(), GCInterval: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, a := range accounts {
		if err := st.CreateAccount(a, "pw", mailbox.DefaultMailboxes()); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// startLMTP runs a real LMTP server over st on a loopback port and
// returns its address.
func startLMTP(t testing.TB, st *mailbox.Store, opts Options, lopts LMTPOptions) (string, *Deliverer) {
	t.Helper()
	opts.Logger = quietLogger()
	lopts.Logger = opts.Logger
	d := NewDeliverer(st, opts)
	srv := NewLMTPServer(d, lopts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		d.Close(context.Background())
	})
	return ln.Addr().String(), d
}

func dialLMTP(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("mta.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// inbox returns the messages in acct's INBOX as the sender sent them:
// without the trace fields LMTP prepends (TestLMTPTraceFields checks
// those).
func inbox(t *testing.T, st *mailbox.Store, acct string) [][]byte {
	t.Helper()
	msgs := inboxRaw(t, st, acct)
	for i, m := range msgs {
		msgs[i] = withoutTrace(m)
	}
	return msgs
}

// withoutTrace drops a leading Return-Path and Delivered-To field.
func withoutTrace(m []byte) []byte {
	for _, name := range []string{"Return-Path: ", "Delivered-To: "} {
		if bytes.HasPrefix(m, []byte(name)) {
			if i := bytes.IndexByte(m, '\n'); i >= 0 {
				m = m[i+1:]
			}
		}
	}
	return m
}

// inboxRaw returns the stored bytes of acct's INBOX.
func inboxRaw(t *testing.T, st *mailbox.Store, acct string) [][]byte {
	t.Helper()
	mb, err := st.Mailbox(acct, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(acct, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		raw, err := st.Raw(m.Blob)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

func wantSMTPCode(t *testing.T, err error, code int, ec smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want SMTP error %d %v", err, code, ec)
	}
	if se.Code != code || se.EnhancedCode != ec {
		t.Fatalf("got %d %v %q, want %d %v", se.Code, se.EnhancedCode, se.Message, code, ec)
	}
}

// A message with what tends to break byte-for-byte storage: a leading dot
// (dot-stuffed on the wire), 8-bit bytes, a long line, no final newline
// handling surprises.
var tricky = []byte("From: a@example.net\r\nTo: alice@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <m1@example.net>\r\n\r\n" +
	".leading dot\r\n..two dots\r\ncaf\xc3\xa9 \xff\xfe raw 8-bit\r\n" + strings.Repeat("x", 990) + "\r\n")

func TestLMTPMultiRecipientWithUnknown(t *testing.T) {
	st := openStore(t, "alice", "bob")
	addr, _ := startLMTP(t, st, Options{}, LMTPOptions{Hostname: "gw.test"})
	c := dialLMTP(t, addr)

	if err := c.Mail("sender@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@example.org", nil); err != nil {
		t.Fatal(err)
	}
	wantSMTPCode(t, c.Rcpt("nobody@example.org", nil), 550, smtp.EnhancedCode{5, 1, 1})
	if err := c.Rcpt("Bob@Example.Org", nil); err != nil {
		t.Fatal(err)
	}
	// The same account again under another spelling: one copy, and a
	// status for each RCPT as LMTP requires.
	if err := c.Rcpt("ALICE@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(tricky); err != nil {
		t.Fatal(err)
	}
	resps, err := w.CloseWithLMTPResponse()
	if err != nil {
		t.Fatalf("data: %v", err)
	}
	for _, r := range []string{"alice@example.org", "Bob@Example.Org", "ALICE@example.org"} {
		if resps[r] == nil { // present only for a 250
			t.Errorf("status for %s: %+v", r, resps[r])
		}
	}
	if _, ok := resps["nobody@example.org"]; ok {
		t.Error("refused recipient got a DATA status")
	}
	for _, acct := range []string{"alice", "bob"} {
		got := inbox(t, st, acct)
		if len(got) != 1 {
			t.Fatalf("%s has %d messages, want 1", acct, len(got))
		}
		if !bytes.Equal(got[0], tricky) {
			t.Fatalf("%s: stored bytes differ:\n%q\nwant\n%q", acct, got[0], tricky)
		}
	}

	// The session goes on: a second transaction on the same connection.
	if err := c.Mail("sender@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err = c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: second\r\n\r\nbody\r\n")
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		t.Fatal(err)
	}
	if n := len(inbox(t, st, "bob")); n != 2 {
		t.Fatalf("bob has %d messages, want 2", n)
	}
}

func TestLMTPSizeLimit(t *testing.T) {
	st := openStore(t, "alice")
	addr, _ := startLMTP(t, st, Options{MaxMessageBytes: 1000}, LMTPOptions{})
	c := dialLMTP(t, addr)
	if size, ok := c.MaxMessageSize(); !ok || size < 1000 || size > 1001 {
		t.Fatalf("SIZE extension: %d %v", size, ok)
	}

	// Declared too large at MAIL.
	wantSMTPCode(t, c.Mail("s@example.net", &smtp.MailOptions{Size: 5000}), 552, smtp.EnhancedCode{5, 3, 4})
	c.Reset()

	// Found too large while reading DATA.
	if err := c.Mail("s@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: big\r\n\r\n"+strings.Repeat("0123456789abcdef\r\n", 200))
	_, err = w.CloseWithLMTPResponse()
	var lerr smtp.LMTPDataError
	if !errors.As(err, &lerr) || lerr["alice@example.org"] == nil {
		t.Fatalf("want a per-recipient error, got %v", err)
	}
	wantSMTPCode(t, lerr["alice@example.org"], 552, smtp.EnhancedCode{5, 3, 4})
	if n := len(inbox(t, st, "alice")); n != 0 {
		t.Fatalf("oversized message stored (%d)", n)
	}

	// The connection survives and a small message goes through.
	if err := c.Mail("s@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err = c.Data()
	if err != nil {
		t.Fatal(err)
	}
	// Exactly at the limit: accepted, byte for byte.
	atLimit := "Subject: at the limit\r\n\r\n" + strings.Repeat("y", 1000-len("Subject: at the limit\r\n\r\n")-2) + "\r\n"
	io.WriteString(w, atLimit)
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		t.Fatal(err)
	}
	if got := inbox(t, st, "alice"); len(got) != 1 || string(got[0]) != atLimit {
		t.Fatalf("alice's INBOX: %q", got)
	}
	// One byte over: refused.
	if err := c.Mail("s@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err = c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "x"+atLimit)
	_, err = w.CloseWithLMTPResponse()
	if !errors.As(err, &lerr) || lerr["alice@example.org"] == nil {
		t.Fatalf("one byte over the limit: %v", err)
	}
	wantSMTPCode(t, lerr["alice@example.org"], 552, smtp.EnhancedCode{5, 3, 4})
}

func TestLMTPDomains(t *testing.T) {
	st := openStore(t, "alice")
	addr, _ := startLMTP(t, st, Options{Addresses: addressing.New(addressing.Options{Domains: []string{"Example.org"}})}, LMTPOptions{})
	c := dialLMTP(t, addr)
	if err := c.Mail("s@example.net", nil); err != nil {
		t.Fatal(err)
	}
	wantSMTPCode(t, c.Rcpt("alice@other.net", nil), 550, smtp.EnhancedCode{5, 1, 2})
	// A served domain, in another case and with the root dot.
	if err := c.Rcpt("Alice@EXAMPLE.ORG.", nil); err != nil {
		t.Fatal(err)
	}
	// Unknown user at a served domain is 5.1.1, not 5.1.2.
	wantSMTPCode(t, c.Rcpt("zed@example.org", nil), 550, smtp.EnhancedCode{5, 1, 1})
}

func TestLMTPMaxRecipients(t *testing.T) {
	st := openStore(t, "alice", "bob", "carol")
	addr, _ := startLMTP(t, st, Options{}, LMTPOptions{MaxRecipients: 2})
	c := dialLMTP(t, addr)
	if err := c.Mail("s@example.net", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"alice@example.org", "bob@example.org"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	wantSMTPCode(t, c.Rcpt("carol@example.org", nil), 452, smtp.EnhancedCode{4, 5, 3})
}

func TestLMTPStoreFailureIsTemporary(t *testing.T) {
	st := openStore(t, "alice")
	addr, _ := startLMTP(t, st, Options{}, LMTPOptions{})
	c := dialLMTP(t, addr)
	if err := c.Mail("s@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@example.org", nil); err != nil {
		t.Fatal(err)
	}
	// The store goes away between RCPT and DATA: the MTA must be told to
	// retry, not that the mail bounced.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: x\r\n\r\nx\r\n")
	_, err = w.CloseWithLMTPResponse()
	var lerr smtp.LMTPDataError
	if !errors.As(err, &lerr) || lerr["alice@example.org"] == nil {
		t.Fatalf("want a per-recipient error, got %v", err)
	}
	wantSMTPCode(t, lerr["alice@example.org"], 451, smtp.EnhancedCode{4, 3, 0})
	// And at RCPT time too.
	if err := c.Mail("s@example.net", nil); err != nil {
		t.Fatal(err)
	}
	wantSMTPCode(t, c.Rcpt("alice@example.org", nil), 451, smtp.EnhancedCode{4, 3, 0})
}

// TestLMTPAccountDeletedAfterRcpt: DATA does not look the recipient up
// again before the delivery's transaction; an account deleted between
// RCPT and DATA is found gone in it: 550 5.1.1, nothing stored, and the
// other recipient's copy delivered.
func TestLMTPAccountDeletedAfterRcpt(t *testing.T) {
	st := openStore(t, "alice", "bob")
	addr, _ := startLMTP(t, st, Options{}, LMTPOptions{})
	c := dialLMTP(t, addr)
	if err := c.Mail("s@example.net", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"alice@example.org", "bob@example.org"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteAccount("bob"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(tricky); err != nil {
		t.Fatal(err)
	}
	resps, err := w.CloseWithLMTPResponse()
	if err == nil {
		t.Fatal("DATA: no error for the deleted recipient")
	}
	var lerr smtp.LMTPDataError
	if !errors.As(err, &lerr) {
		t.Fatalf("DATA: %v", err)
	}
	wantSMTPCode(t, lerr["bob@example.org"], 550, smtp.EnhancedCode{5, 1, 1})
	if resps["alice@example.org"] == nil {
		t.Fatalf("alice's status: %v", lerr["alice@example.org"])
	}
	if got := inbox(t, st, "alice"); len(got) != 1 {
		t.Fatalf("alice's INBOX has %d messages", len(got))
	}
	if ok, err := st.AccountExists("bob"); err != nil || ok {
		t.Fatalf("bob exists: %v, %v", ok, err)
	}
}

func TestDeliverDirect(t *testing.T) {
	st := openStore(t, "alice", "bob")
	d := NewDeliverer(st, Options{Logger: quietLogger(), MaxMessageBytes: 100})
	ctx := context.Background()
	msg := []byte("Subject: direct\n\nLF only, stored as given\n")

	errs := d.Deliver(ctx, []string{"alice", "nobody", "bad address!", "bob@x"}, "NoSuchFolder", msg)
	if errs[0] != nil || errs[3] != nil {
		t.Fatalf("known recipients failed: %v", errs)
	}
	if !errors.Is(errs[1], ErrNoUser) || !errors.Is(errs[2], ErrNoUser) {
		t.Fatalf("unknown recipients: %v", errs)
	}
	if got := inbox(t, st, "alice"); len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("alice's INBOX (fallback from a missing mailbox): %q", got)
	}

	// Into a named mailbox.
	if errs := d.Deliver(ctx, []string{"alice"}, "archive", msg); errs[0] != nil {
		// "archive" is not "Archive": mailbox names are case-sensitive
		// except INBOX, so this falls back to INBOX too.
		t.Fatal(errs[0])
	}
	if errs := d.Deliver(ctx, []string{"alice"}, "Archive", msg); errs[0] != nil {
		t.Fatal(errs[0])
	}
	_, status, err := st.Status("alice", "Archive")
	if err != nil || status.Messages != 1 {
		t.Fatalf("Archive: %+v %v", status, err)
	}

	big := bytes.Repeat([]byte("x"), 101)
	if errs := d.Deliver(ctx, []string{"alice"}, "", big); !errors.Is(errs[0], ErrTooLarge) {
		t.Fatalf("oversized: %v", errs[0])
	}
	if errs := d.Deliver(ctx, []string{"alice@"}, "", msg); !errors.Is(errs[0], ErrBadAddress) {
		t.Fatalf("empty domain: %v", errs[0])
	}

	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if errs := d.Deliver(ctx, []string{"alice"}, "", msg); !errors.Is(errs[0], ErrTemporary) {
		t.Fatalf("after Close: %v", errs[0])
	}
}

// certifyAll is a real (if trivial) Certifier: it files every copy in a
// "Held" mailbox, standing in for the receipts package.
type certifyAll struct{ seen []Item }

// Check refuses messages that say "refuse me", as a malformed
// Certified-Delivery header is refused.
func (c *certifyAll) Check(raw []byte, sender, account string) (bool, error) {
	if bytes.Contains(raw, []byte("refuse me")) {
		return false, fmt.Errorf("Certified-Delivery: malformed")
	}
	return true, nil
}

func (c *certifyAll) DeliverCertified(tx *mailbox.Tx, it Item) (bool, error) {
	c.seen = append(c.seen, it)
	if _, err := tx.AppendBlob(it.Account, "Held", it.Blob, mailbox.AppendOptions{}); err != nil {
		return false, fmt.Errorf("holding: %w", err)
	}
	return true, nil
}

func TestCertifierHook(t *testing.T) {
	st := openStore(t, "alice")
	if err := st.Update(func(tx *mailbox.Tx) error {
		_, err := tx.CreateMailbox("alice", mailbox.NewMailbox{Name: "Held"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c := &certifyAll{}
	d := NewDeliverer(st, Options{Logger: quietLogger(), Certifier: c})
	msg := []byte("Subject: certified\r\n\r\nx\r\n")
	if errs := d.Deliver(context.Background(), []string{"alice"}, "", msg); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if len(c.seen) != 1 || c.seen[0].Account != "alice" || !bytes.Equal(c.seen[0].Raw, msg) {
		t.Fatalf("certifier saw %+v", c.seen)
	}
	if n := len(inbox(t, st, "alice")); n != 0 {
		t.Fatalf("handled item also went to INBOX (%d)", n)
	}
	errs := d.Deliver(context.Background(), []string{"alice"}, "", []byte("Subject: x\r\n\r\nrefuse me\r\n"))
	if !errors.Is(errs[0], ErrMalformed) || !strings.Contains(errs[0].Error(), "Certified-Delivery: malformed") {
		t.Fatalf("refused message: %v", errs[0])
	}
	if e := smtpErr(errs[0]).(*smtp.SMTPError); e.Code != 550 || e.EnhancedCode != (smtp.EnhancedCode{5, 6, 0}) || e.Message != "Certified-Delivery: malformed" {
		t.Fatalf("LMTP reply for a malformed message: %+v", e)
	}
	_, status, err := st.Status("alice", "Held")
	if err != nil || status.Messages != 1 {
		t.Fatalf("Held: %+v %v", status, err)
	}
}

func TestLMTPShutdownDrains(t *testing.T) {
	st := openStore(t, "alice")
	d := NewDeliverer(st, Options{Logger: quietLogger()})
	srv := NewLMTPServer(d, LMTPOptions{Logger: quietLogger()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	busy := dialLMTP(t, ln.Addr().String())
	idle := dialLMTP(t, ln.Addr().String())

	// One connection is inside a transaction when shutdown begins.
	if err := busy.Mail("s@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := busy.Rcpt("alice@example.org", nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	// The idle one is told to come back later...
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := idle.Mail("s@example.net", nil)
		if err != nil {
			wantSMTPCode(t, err, 421, smtp.EnhancedCode{4, 3, 2})
			break
		}
		idle.Reset()
		if time.Now().After(deadline) {
			t.Fatal("MAIL still accepted during shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("shutdown returned (%v) while a transaction runs", err)
	default:
	}
	// ...while the running transaction completes and is stored.
	w, err := busy.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: in flight\r\n\r\nx\r\n")
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(inbox(t, st, "alice")); n != 1 {
		t.Fatalf("alice has %d messages, want 1", n)
	}
}
