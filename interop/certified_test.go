package interop

import (
	"bytes"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// certifiedMessage is M, with the header that makes it certified.
func certifiedMessage(header, body string) string {
	return "From: Court Clerk <clerk@court.example>\r\nTo: alice@example.org\r\nSubject: Summons\r\n" +
		header + "Message-ID: <" + strings.ReplaceAll(body, " ", "-") + "@court.example>\r\n\r\n" + body + "\r\n"
}

func (s *server) lmtpSend(t *testing.T, to, msg string) (string, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.lmtp)
	cmd := exec.Command("swaks", "--protocol", "LMTP", "--server", host, "--port", port,
		"--from", "clerk@court.example", "--to", to, "--data", "-")
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func inboxBodies(t *testing.T, addr, user, pw string) []string {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.BodySection[0].Bytes))
	}
	return out
}

// TestCertifiedOverLMTPAndSign delivers certified items through swaks, has
// one refused for a malformed header, and acknowledges one with a key the
// recipient holds through `certmail sign`, run as a user would.
func TestCertifiedOverLMTPAndSign(t *testing.T) {
	requireTool(t, "swaks")
	s := startServer(t)
	s.addUser("alice", "alice-pw")

	out, err := s.lmtpSend(t, "alice@example.org", certifiedMessage("Certified-Delivery: deadline=soon\r\n", "bad header"))
	if err == nil || !strings.Contains(out, "550 5.6.0") || !strings.Contains(out, "deadline") {
		t.Fatalf("malformed Certified-Delivery was not refused with 5.6.0:\n%s", out)
	}
	if out, err := s.lmtpSend(t, "alice@example.org", certifiedMessage("Certified-Delivery: deadline=48h; reveal=sender-subject\r\n", "secret summons body")); err != nil {
		t.Fatalf("certified delivery: %v\n%s", err, out)
	}
	bodies := inboxBodies(t, s.imap, "alice", "alice-pw")
	if len(bodies) != 1 || strings.Contains(bodies[0], "secret summons body") || !strings.Contains(bodies[0], "Certified-Label:") {
		t.Fatalf("INBOX should hold only the stub, got %d messages:\n%s", len(bodies), strings.Join(bodies, "\n----\n"))
	}

	dir := t.TempDir()
	key := filepath.Join(dir, "alice.pem")
	s.run("", "keygen", "--out", key)
	s.run("", "key", "register", "--user", "alice", "--pubkey", key+".pub", "--data", s.data)
	signOut := s.run("alice-pw\n", "sign", "--imap", s.imap, "--user", "alice", "--key", key, "--all", "--yes", "--password-stdin")
	if !strings.Contains(signOut, "cod signed and handed in") {
		t.Fatalf("certmail sign:\n%s", signOut)
	}
	bodies = inboxBodies(t, s.imap, "alice", "alice-pw")
	if len(bodies) != 1 || !strings.Contains(bodies[0], "secret summons body") {
		t.Fatalf("after signing, INBOX should hold M:\n%s", strings.Join(bodies, "\n----\n"))
	}
	keys := s.run("", "key", "list", "--user", "alice", "--data", s.data)
	if !strings.Contains(keys, "recipient-held") || !strings.Contains(keys, "gateway-held") {
		t.Fatalf("key list:\n%s", keys)
	}
}

// TestAcknowledgeByMoveWithImaplib acknowledges a certified item the way a
// mail client does: UID MOVE of the stub into Acknowledge.
func TestAcknowledgeByMoveWithImaplib(t *testing.T) {
	py := requireTool(t, "python3")
	requireTool(t, "swaks")
	s := startServer(t)
	s.addUser("bob", "bob-pw")
	if out, err := s.lmtpSend(t, "bob@example.org", certifiedMessage("Certified-Delivery: deadline=2h\r\n", "held body for bob")); err != nil {
		t.Fatalf("certified delivery: %v\n%s", err, out)
	}
	host, port, _ := net.SplitHostPort(s.imap)
	script := `
import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
m.login("bob", "bob-pw")
m.select("INBOX")
typ, data = m.uid("SEARCH", None, "HEADER", "Certified-Label", '""')
uid = data[0].split()[0]
typ, data = m.uid("MOVE", uid, "Acknowledge")
assert typ == "OK", (typ, data)
m.select("INBOX")
typ, data = m.uid("SEARCH", None, "ALL")
uids = data[0].split()
assert len(uids) == 1, data
typ, data = m.uid("FETCH", uids[0], "(BODY.PEEK[])")
assert b"held body for bob" in data[0][1], data
typ, data = m.select("Acknowledge")
assert data == [b"1"], data
typ, data = m.fetch("1", "(BODY.PEEK[])")
assert b"filename=cod.jws" in data[0][1], data   # the receipt carries the COD
print("PASS")
`
	cmd := exec.Command(py, "-c", script, host, port)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil || !strings.Contains(buf.String(), "PASS") {
		t.Fatalf("imaplib acknowledgement: %v\n%s", err, buf.String())
	}
}

// TestCustodyKeyOnPasswordChange: the owner's password change (with the
// old password) re-seals the custody key; an operator's reset retires it
// and makes a new one, the old one still listed for verifying.
func TestCustodyKeyOnPasswordChange(t *testing.T) {
	s := startServer(t)
	s.addUser("hana", "first-pw")
	gatewayHeld := func() []string {
		var out []string
		for _, line := range strings.Split(s.run("", "key", "list", "--user", "hana", "--data", s.data), "\n") {
			if strings.Contains(line, "gateway-held") {
				out = append(out, line)
			}
		}
		return out
	}
	before := gatewayHeld()
	if len(before) != 1 || !strings.Contains(before[0], "active") {
		t.Fatalf("a new account has one active custody key:\n%v", before)
	}
	s.run("first-pw\nsecond-pw\n", "user", "passwd", "hana", "--keep-key", "--password-stdin", "--data", s.data)
	if after := gatewayHeld(); len(after) != 1 || after[0] != before[0] {
		t.Fatalf("the owner's password change must keep the key:\nbefore %v\nafter  %v", before, after)
	}
	s.run("third-pw\n", "user", "passwd", "hana", "--password-stdin", "--data", s.data)
	after := gatewayHeld()
	if len(after) != 2 || !strings.Contains(strings.Join(after, "\n"), "retired") {
		t.Fatalf("an operator's reset must retire the old key and make a new one:\n%v", after)
	}
	c, err := imapclient.DialInsecure(s.imap, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("hana", "third-pw").Wait(); err != nil {
		t.Fatal(err)
	}
}
