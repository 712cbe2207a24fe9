package interop

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func plainMessage(id, subject string) string {
	return "From: sender@example.org\r\nTo: desk@example.org\r\nSubject: " + subject + "\r\nMessage-ID: <" + id + "@example.org>\r\n\r\nbody of " + subject + "\r\n"
}

// mailboxMessages returns the raw messages of a mailbox and their flags.
func mailboxMessages(t *testing.T, addr, user, pw, mbox string) ([]string, [][]imap.Flag) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select(mbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var raws []string
	var flags [][]imap.Flag
	for _, m := range msgs {
		raws = append(raws, string(m.BodySection[0].Bytes))
		flags = append(flags, m.Flags)
	}
	return raws, flags
}

func countContaining(msgs []string, s string) int {
	n := 0
	for _, m := range msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestAutoForwardUnread: unread past the timeout goes to a local and an
// external alternate exactly once; a message read in time does not; a
// restart with a timer pending still forwards once.
func TestAutoForwardUnread(t *testing.T) {
	requireTool(t, "swaks")
	sink, relay := startSink(t)
	conf := filepath.Join(t.TempDir(), "certmail.toml")
	// Metrics on their own listener, labelled per mailbox (off by
	// default).
	os.WriteFile(conf, []byte(fmt.Sprintf("hostname = \"mail.example.org\"\ndomains = [\"example.org\"]\n[relay]\naddr = %q\ntls = \"none\"\n[metrics]\nper_mailbox = true\n", relay)), 0o600)
	metricsAddr := freeAddr(t)
	s := startServer(t, "--config", conf, "--metrics", metricsAddr)
	s.addUser("desk", "desk-pw")
	s.addUser("alice", "alice-pw")
	out := s.run("", "policy", "set", "desk", "--forward-unread-after", "3s", "--to", "alice,duty@partner.example", "--data", s.data)
	if !strings.Contains(out, "desk/INBOX: forward unread after 3s to alice, duty@partner.example") {
		t.Fatalf("policy set:\n%s", out)
	}
	if out, err := s.lmtpSend(t, "desk@example.org", plainMessage("unread-1", "left unread")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := s.lmtpSend(t, "desk@example.org", plainMessage("read-1", "read in time")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Read the second one right away, as a desk member would.
	c, err := imapclient.DialInsecure(s.imap, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Login("desk", "desk-pw").Wait()
	c.Select("INBOX", nil).Wait()
	if _, err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// A third message, then a restart while its timer is pending.
	if out, err := s.lmtpSend(t, "desk@example.org", plainMessage("restart-1", "pending across a restart")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s.stop()
	s.start()

	waitUntil(t, "forwards to alice", 20*time.Second, func() bool {
		msgs, _ := mailboxMessages(t, s.imap, "alice", "alice-pw", "INBOX")
		return countContaining(msgs, "left unread") == 1 && countContaining(msgs, "pending across a restart") == 1
	})
	sink.waitFor(t, "the external forward", func(m sinkMsg) bool {
		return bytes.Contains(m.data, []byte("Subject: left unread")) && bytes.Contains(m.data, []byte("Resent-To:"))
	})
	time.Sleep(3 * time.Second) // any duplicate would show by now
	msgs, _ := mailboxMessages(t, s.imap, "alice", "alice-pw", "INBOX")
	if n := countContaining(msgs, "left unread"); n != 1 {
		t.Fatalf("forwarded %d times, want once", n)
	}
	if n := countContaining(msgs, "read in time"); n != 0 {
		t.Fatal("a message read before the timeout was forwarded")
	}
	// The timers due after the restart fire in no set order (RunTimers
	// shuffles each round's), so the forwarded copy is found by content.
	var fwd string
	for _, m := range msgs {
		if strings.Contains(m, "left unread") {
			fwd = m
		}
	}
	for _, h := range []string{"Resent-From: desk@example.org", "Resent-To: alice@example.org, duty@partner.example", "Resent-Date:", "Resent-Message-ID:", "Message-ID: <unread-1@example.org>"} {
		if !strings.Contains(fwd, h) {
			t.Errorf("forwarded copy lacks %q:\n%s", h, fwd)
		}
	}
	sink.mu.Lock()
	ext := 0
	for _, m := range sink.msgs {
		if bytes.Contains(m.data, []byte("Subject: left unread")) {
			ext++
		}
	}
	sink.mu.Unlock()
	if ext != 1 {
		t.Fatalf("external alternate got %d copies, want 1", ext)
	}
	deskMsgs, deskFlags := mailboxMessages(t, s.imap, "desk", "desk-pw", "INBOX")
	for i, m := range deskMsgs {
		forwarded := false
		for _, f := range deskFlags[i] {
			if f == "$Forwarded" {
				forwarded = true
			}
		}
		if strings.Contains(m, "read in time") == forwarded {
			t.Errorf("desk message %d: $Forwarded=%v:\n%s", i+1, forwarded, m)
		}
	}
	report := s.run("", "unread", "--data", s.data)
	if !strings.Contains(report, "forwards done") || !strings.Contains(report, "alice") {
		t.Fatalf("certmail unread:\n%s", report)
	}
	metrics := runTool(t, nil, requireTool(t, "curl"), "-s", "http://"+metricsAddr+"/metrics")
	for _, want := range []string{`certmail_unread_messages{account="alice",mailbox="INBOX"} 2`, "certmail_forwards_total 2", "certmail_outbox_pending"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
}

// TestForwardSurvivesKill kills the server while forwards fire and checks
// that after a restart every message was forwarded exactly once.
func TestForwardSurvivesKill(t *testing.T) {
	requireTool(t, "swaks")
	s := startServer(t)
	s.addUser("desk", "desk-pw")
	s.addUser("bob", "bob-pw")
	s.run("", "policy", "set", "desk", "--forward-unread-after", "2s", "--to", "bob", "--data", s.data)
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := s.lmtpSend(t, "desk@example.org", plainMessage(fmt.Sprintf("kill-%d", i), fmt.Sprintf("kill test %d", i))); err != nil {
				t.Errorf("%v\n%s", err, out)
			}
		}()
	}
	wg.Wait()
	// The timers fall due about two seconds after delivery; kill in the
	// middle of them firing.
	time.Sleep(2300 * time.Millisecond)
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
	s.start()
	waitUntil(t, "every forward", 20*time.Second, func() bool {
		msgs, _ := mailboxMessages(t, s.imap, "bob", "bob-pw", "INBOX")
		return len(msgs) >= n
	})
	time.Sleep(2 * time.Second)
	msgs, _ := mailboxMessages(t, s.imap, "bob", "bob-pw", "INBOX")
	for i := 0; i < n; i++ {
		if c := countContaining(msgs, fmt.Sprintf("<kill-%d@example.org>", i)); c != 1 {
			t.Errorf("message %d forwarded %d times, want exactly once", i, c)
		}
	}
}

// TestForwardLoopProtection: alice forwards to desk and desk to alice; a
// message goes from alice to desk once and never comes back.
func TestForwardLoopProtection(t *testing.T) {
	requireTool(t, "swaks")
	s := startServer(t)
	s.addUser("desk", "desk-pw")
	s.addUser("alice", "alice-pw")
	s.run("", "policy", "set", "alice", "--forward-unread-after", "1s", "--to", "desk", "--data", s.data)
	s.run("", "policy", "set", "desk", "--forward-unread-after", "1s", "--to", "alice", "--data", s.data)
	if out, err := s.lmtpSend(t, "alice@example.org", plainMessage("loop-1", "loop test")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitUntil(t, "the forward to desk", 15*time.Second, func() bool {
		msgs, _ := mailboxMessages(t, s.imap, "desk", "desk-pw", "INBOX")
		return countContaining(msgs, "loop test") == 1
	})
	time.Sleep(4 * time.Second) // desk's own timer has fired by now
	aliceMsgs, _ := mailboxMessages(t, s.imap, "alice", "alice-pw", "INBOX")
	deskMsgs, _ := mailboxMessages(t, s.imap, "desk", "desk-pw", "INBOX")
	if countContaining(aliceMsgs, "loop test") != 1 || countContaining(deskMsgs, "loop test") != 1 {
		t.Fatalf("loop: alice has %d copies, desk %d; want 1 each", countContaining(aliceMsgs, "loop test"), countContaining(deskMsgs, "loop test"))
	}
}

// TestCertifiedForwardToDesk: a certified stub unacknowledged past the
// policy's timeout goes to the desk, is acknowledged there, and the
// sender's report names the desk as signer; the recipient's stub is
// withdrawn. An originator alternate outside the policy is refused.
func TestCertifiedForwardToDesk(t *testing.T) {
	py := requireTool(t, "python3")
	requireTool(t, "swaks")
	sink, relay := startSink(t)
	conf := filepath.Join(t.TempDir(), "certmail.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("hostname = \"mail.example.org\"\ndomains = [\"example.org\"]\n[relay]\naddr = %q\ntls = \"none\"\n"+
		"[certified]\ntrusted_lmtp_clients = [\"127.0.0.1\"]\n", relay)), 0o600) // swaks, the trusted MTA
	s := startServer(t, "--config", conf)
	s.addUser("frank", "frank-pw")
	s.addUser("desk", "desk-pw")
	s.run("", "policy", "set", "frank", "--forward-unread-after", "2s", "--to", "desk", "--certified-only", "--data", s.data)
	msg := certifiedMessage("Certified-Delivery: deadline=1h; alternate=stranger@elsewhere.example\r\n", "desk certified body")
	if out, err := s.lmtpSend(t, "frank@example.org", msg); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// frank reads the stub: a stub stays unread until a COD, so the
	// forward still happens.
	frankMsgs, _ := mailboxMessages(t, s.imap, "frank", "frank-pw", "INBOX")
	if len(frankMsgs) != 1 {
		t.Fatalf("frank has %d messages", len(frankMsgs))
	}
	waitUntil(t, "the stub at the desk", 15*time.Second, func() bool {
		msgs, _ := mailboxMessages(t, s.imap, "desk", "desk-pw", "INBOX")
		return countContaining(msgs, "Certified-Label:") == 1
	})
	host, port, _ := splitHostPort(s.imap)
	runTool(t, nil, py, "-c", `
import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
m.login("desk", "desk-pw")
m.select("INBOX")
typ, data = m.uid("SEARCH", None, "HEADER", "Certified-Label", '""')
uid = data[0].split()[0]
typ, data = m.uid("MOVE", uid, "Acknowledge")
assert typ == "OK", data
`, host, port)
	deskMsgs, _ := mailboxMessages(t, s.imap, "desk", "desk-pw", "INBOX")
	if countContaining(deskMsgs, "desk certified body") != 1 {
		t.Fatalf("M was not released to the desk:\n%s", strings.Join(deskMsgs, "\n---\n"))
	}
	frankMsgs, _ = mailboxMessages(t, s.imap, "frank", "frank-pw", "INBOX")
	if len(frankMsgs) != 0 {
		t.Fatalf("frank's stub was not withdrawn: %d messages left", len(frankMsgs))
	}
	rod := sink.waitFor(t, "the report of delivery", func(m sinkMsg) bool { return bytes.Contains(m.data, []byte("Report of delivery")) })
	if !bytes.Contains(rod.data, []byte("acknowledged by desk")) {
		t.Fatalf("the report does not name the desk:\n%s", rod.data)
	}
	sink.waitFor(t, "the forward notice", func(m sinkMsg) bool { return bytes.Contains(m.data, []byte("forwarded to desk")) })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, m := range sink.msgs {
		if strings.Contains(strings.Join(m.to, ","), "stranger@elsewhere.example") {
			t.Fatal("the originator alternate outside the policy got mail")
		}
	}
}
