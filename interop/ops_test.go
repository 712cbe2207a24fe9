package interop

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"certmail/autoconfig"
)

// writeConfig writes a config file into a temp dir and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "certmail.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startServerIn starts a server on an existing data directory.
func startServerIn(t *testing.T, data string, extra ...string) *server {
	t.Helper()
	s := &server{t: t, data: data, extraArg: extra}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func imapLogin(t *testing.T, addr, user, pw string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// snapshot describes an account as a client sees it: every mailbox with
// its UIDVALIDITY, and every message with its UID, flags and bytes.
func snapshot(t *testing.T, addr, user, pw string) []string {
	t.Helper()
	c := imapLogin(t, addr, user, pw)
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range boxes {
		sel, err := c.Select(b.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s uidvalidity=%d uidnext=%d n=%d", b.Mailbox, sel.UIDValidity, sel.UIDNext, sel.NumMessages))
		if sel.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			flags := make([]string, len(m.Flags))
			for i, f := range m.Flags {
				flags[i] = string(f)
			}
			slices.Sort(flags)
			out = append(out, fmt.Sprintf("  uid=%d flags=%v %q", m.UID, flags, m.BodySection[0].Bytes))
		}
	}
	return out
}

// splitUIDValidity takes the UIDVALIDITYs out of a snapshot, by mailbox.
func splitUIDValidity(lines []string) ([]string, map[string]uint32) {
	re := regexp.MustCompile(`^(\S+) uidvalidity=(\d+) `)
	out, uv := make([]string, len(lines)), map[string]uint32{}
	for i, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseUint(m[2], 10, 32)
			uv[m[1]] = uint32(n)
			l = m[1] + " " + l[len(m[0]):]
		}
		out[i] = l
	}
	return out, uv
}

var labelRE = regexp.MustCompile(`Certified-Label: (\S+)`)

// TestBackupRestore populates a store (messages, flags, a mailbox of the
// user's, a certified item acknowledged with its evidence), backs it up
// while the server runs and takes mail, restores it into a new directory,
// and checks that a server on it shows the same mail, flags and evidence,
// verifiable with the gateway key the old server published.
func TestBackupRestore(t *testing.T) {
	requireTool(t, "swaks")
	s := startServer(t)
	s.addUser("alice", "alice-pw")
	s.addUser("bob", "bob-pw")
	for i := 1; i <= 3; i++ {
		s.deliverSwaks("alice@example.org", fmt.Sprintf("plain %d", i), fmt.Sprintf("body %d", i))
	}
	s.deliverSwaks("bob@example.org", "for bob", "bob's body")
	if out, err := s.lmtpSend(t, "alice@example.org", certifiedMessage("Certified-Delivery: deadline=48h\r\n", "backed up summons")); err != nil {
		t.Fatalf("certified delivery: %v\n%s", err, out)
	}
	c := imapLogin(t, s.imap, "alice", "alice-pw")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Important"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Projects/2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	draft := []byte("Subject: draft\r\n\r\nplan for 2026\r\n")
	app := c.Append("Projects/2026", int64(len(draft)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
	app.Write(draft)
	app.Close()
	if _, err := app.Wait(); err != nil {
		t.Fatal(err)
	}
	// Acknowledge the certified item as a mail client does: move the stub.
	stubUIDs, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Certified-Label"}}}, nil).Wait()
	if err != nil || len(stubUIDs.AllUIDs()) != 1 {
		t.Fatalf("stub search: %v %v", stubUIDs, err)
	}
	stub, err := c.Fetch(imap.UIDSetNum(stubUIDs.AllUIDs()[0]), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true, Specifier: imap.PartSpecifierHeader}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	m := labelRE.FindSubmatch(stub[0].BodySection[0].Bytes)
	if m == nil {
		t.Fatalf("no label in the stub:\n%s", stub[0].BodySection[0].Bytes)
	}
	label := string(m[1])
	if _, err := c.Move(imap.UIDSetNum(stubUIDs.AllUIDs()[0]), "Acknowledge").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout()

	dir := t.TempDir()
	gatewayKey := filepath.Join(dir, "gateway.pub.pem")
	os.WriteFile(gatewayKey, []byte(certmailOut(t, "key", "show", "--gateway", "--data", s.data)), 0o644)
	bundleBefore := filepath.Join(dir, "before.json")
	certmailOut(t, "evidence", label, "-o", bundleBefore, "--data", s.data)
	want := snapshot(t, s.imap, "alice", "alice-pw")
	wantBob := snapshot(t, s.imap, "bob", "bob-pw")

	// Online backup, with deliveries going on.
	stop := make(chan struct{})
	delivered := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				delivered <- n
				return
			default:
			}
			if _, err := s.lmtpSend(t, "bob@example.org", "Subject: during backup\r\n\r\nx\r\n"); err == nil {
				n++
			}
		}
	}()
	backup := filepath.Join(dir, "certmail.bak")
	out := certmailOut(t, "backup", "--out", backup, "--data", s.data)
	close(stop)
	during := <-delivered
	if !strings.Contains(out, "files gateway.key") {
		t.Fatalf("backup output: %s", out)
	}
	// Mail after the backup, which a client sees: the restore loses it,
	// and its UID will be given again to other mail.
	if _, err := s.lmtpSend(t, "alice@example.org", "Subject: after the backup\r\n\r\nlost\r\n"); err != nil {
		t.Fatal(err)
	}
	c = imapLogin(t, s.imap, "alice", "alice-pw")
	seen, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	c.Logout()
	t.Logf("backup: %s(%d deliveries ran during it)", out, during)
	// An existing file is not overwritten.
	if err := exec.Command(certmailBin, "backup", "--out", backup, "--data", s.data).Run(); err == nil {
		t.Fatal("backup over an existing file succeeded")
	}

	// Restore into a new directory; an existing non-empty one is refused.
	restored := filepath.Join(dir, "restored")
	out = certmailOut(t, "restore", backup, "--data", restored)
	if !strings.Contains(out, "restored") || !strings.Contains(out, "new UIDVALIDITY for each of the") {
		t.Fatalf("restore: %s", out)
	}
	if b, err := exec.Command(certmailBin, "restore", backup, "--data", s.data).CombinedOutput(); err == nil || !strings.Contains(string(b), "not empty") {
		t.Fatalf("restore over a data directory: %v %s", err, b)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(restored, "gateway.key")), mustRead(t, filepath.Join(s.data, "gateway.key"))) {
		t.Fatal("gateway.key differs after restore")
	}

	s2 := startServerIn(t, restored)
	// The same mail, UIDs and flags; every mailbox with a new, higher
	// UIDVALIDITY (RFC 3501 2.3.1.1), so that clients drop their caches.
	got, gotUV := splitUIDValidity(snapshot(t, s2.imap, "alice", "alice-pw"))
	wantLines, wantUV := splitUIDValidity(want)
	if !slices.Equal(got, wantLines) {
		t.Fatalf("alice after restore:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
	}
	for box, uv := range wantUV {
		if gotUV[box] <= uv {
			t.Errorf("%s: UIDVALIDITY %d after the restore, %d before", box, gotUV[box], uv)
		}
	}
	// New mail takes the UID the lost message had, which a client saw:
	// under another UIDVALIDITY, so that it cannot take one for the other.
	if _, err := s2.lmtpSend(t, "alice@example.org", "Subject: after the restore\r\n\r\nnew\r\n"); err != nil {
		t.Fatal(err)
	}
	c = imapLogin(t, s2.imap, "alice", "alice-pw")
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.UIDNext != seen.UIDNext || sel.UIDValidity <= seen.UIDValidity {
		t.Errorf("INBOX: UIDNEXT %d UIDVALIDITY %d after the restore and a delivery; a client saw UIDNEXT %d UIDVALIDITY %d",
			sel.UIDNext, sel.UIDValidity, seen.UIDNext, seen.UIDValidity)
	}
	c.Logout()
	// bob's INBOX holds what it held before the backup, and perhaps some
	// of the deliveries that ran during it, each whole.
	gotBob, _ := splitUIDValidity(snapshot(t, s2.imap, "bob", "bob-pw"))
	wantBob, _ = splitUIDValidity(wantBob)
	for _, line := range wantBob {
		if !slices.Contains(gotBob, line) && !strings.HasPrefix(line, "INBOX ") {
			t.Errorf("bob after restore lacks %s", line)
		}
	}
	bundleAfter := filepath.Join(dir, "after.json")
	certmailOut(t, "evidence", label, "-o", bundleAfter, "--data", restored)
	// Byte for byte but for the signed head, whose issued_at is the time
	// each bundle was made (verify below checks the new one).
	withoutHead := regexp.MustCompile(`,\n  "head": "[^"]+"`)
	before, after := mustRead(t, bundleBefore), mustRead(t, bundleAfter)
	if !withoutHead.Match(before) || !withoutHead.Match(after) {
		t.Fatalf("a bundle without a signed head:\n%s\n%s", before, after)
	}
	if !bytes.Equal(withoutHead.ReplaceAll(before, nil), withoutHead.ReplaceAll(after, nil)) {
		t.Fatal("the evidence bundle differs after restore")
	}
	out = certmailOut(t, "verify", bundleAfter, "--gateway-key", gatewayKey)
	if !strings.Contains(out, "VERIFIED") {
		t.Fatalf("verify after restore:\n%s", out)
	}
	out = certmailOut(t, "check", "--label", label, "--data", restored)
	t.Logf("check after restore: %s", out)
	// The restored gateway signs with the same key.
	if got := certmailOut(t, "key", "show", "--gateway", "--data", restored); got != string(mustRead(t, gatewayKey)) {
		t.Fatal("the restored gateway key differs")
	}
}

// grepTree reports which files under dir contain needle.
func grepTree(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
		return nil
	})
	return hits
}

// TestEncryptionAtRest: with encryption_key_file, a distinctive message
// is in no data file (while it is in a plain store's), reads back over
// IMAP after a restart, is backed up encrypted, and the wrong key stops
// the server with a clear message.
func TestEncryptionAtRest(t *testing.T) {
	requireTool(t, "swaks")
	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(dir, "store.key")
	os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600)
	cfg := writeConfig(t, fmt.Sprintf("encryption_key_file = %q\n", keyFile))

	secret := "ZEBRA-" + hex.EncodeToString(key[:8]) + " the secret body"
	s := startServer(t, "--config", cfg)
	s.run("enc-pw\n", "user", "add", "carol", "--password-stdin", "--config", cfg, "--data", s.data)
	s.deliverSwaks("carol@example.org", "encrypted", secret)
	// A plain store for comparison: the same bytes are found there, so
	// the search below would find them if they were stored in clear.
	plain := startServer(t)
	plain.addUser("carol", "enc-pw")
	plain.deliverSwaks("carol@example.org", "plain", secret)
	plain.stop()
	if hits := grepTree(t, plain.data, []byte(secret)); len(hits) == 0 {
		t.Fatal("control: the message is not found in a plain store's files; the search proves nothing")
	}

	s.stop() // flushes memtables: everything is on disk
	if hits := grepTree(t, s.data, []byte(secret)); len(hits) > 0 {
		t.Fatalf("the message is readable in %v", hits)
	}
	if hits := grepTree(t, s.data, []byte("ZEBRA-")); len(hits) > 0 {
		t.Fatalf("part of the message is readable in %v", hits)
	}

	s.start()
	if got := inboxBodies(t, s.imap, "carol", "enc-pw"); len(got) != 1 || !strings.Contains(got[0], secret) {
		t.Fatalf("after restart: %q", got)
	}
	// The backup is encrypted too, and restores with the key.
	bak := filepath.Join(dir, "enc.bak")
	certmailOut(t, "backup", "--out", bak, "--config", cfg, "--data", s.data)
	if bytes.Contains(mustRead(t, bak), []byte("ZEBRA-")) {
		t.Fatal("the backup holds the message in clear")
	}
	if b, err := exec.Command(certmailBin, "restore", bak, "--data", filepath.Join(dir, "nokey")).CombinedOutput(); err == nil || !strings.Contains(string(b), "backup is encrypted") {
		t.Fatalf("restore without the key: %v %s", err, b)
	}
	restored := filepath.Join(dir, "restored")
	certmailOut(t, "restore", bak, "--config", cfg, "--data", restored)
	s.stop()
	if hits := grepTree(t, restored, []byte("ZEBRA-")); len(hits) > 0 {
		t.Fatalf("the restored store is readable in %v", hits)
	}
	s3 := startServerIn(t, restored, "--config", cfg)
	if got := inboxBodies(t, s3.imap, "carol", "enc-pw"); len(got) != 1 || !strings.Contains(got[0], secret) {
		t.Fatalf("restored: %q", got)
	}
	s3.stop()

	// The wrong key: the server does not start, and says why.
	other := make([]byte, 32)
	rand.Read(other)
	wrongKey := filepath.Join(dir, "wrong.key")
	os.WriteFile(wrongKey, other, 0o600)
	for name, kf := range map[string]string{"wrong key": wrongKey, "no key": ""} {
		wrong := writeConfig(t, fmt.Sprintf("encryption_key_file = %q\n", kf))
		cmd := exec.Command(certmailBin, "serve", "--config", wrong, "--data", restored, "--imap", freeAddr(t), "--lmtp", "", "--http", "")
		b, err := runWithTimeout(cmd, 20*time.Second)
		if err == nil || !strings.Contains(b, "encryption key does not match") {
			t.Fatalf("%s: serve: %v\n%s", name, err, b)
		}
		// The CLI's local mode says the same.
		b, err = runWithTimeout(exec.Command(certmailBin, "user", "list", "--config", wrong, "--data", restored), 20*time.Second)
		if err == nil || !strings.Contains(b, "encryption key does not match") {
			t.Fatalf("%s: user list: %v\n%s", name, err, b)
		}
	}
	// A key file of the wrong size is refused by name.
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, other[:16], 0o600)
	b, err := runWithTimeout(exec.Command(certmailBin, "config", "check", writeConfig(t, fmt.Sprintf("encryption_key_file = %q\n", short))), 20*time.Second)
	if err == nil || !strings.Contains(b, "want exactly 32 bytes") {
		t.Fatalf("short key: %v\n%s", err, b)
	}
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) (string, error) {
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return buf.String(), fmt.Errorf("timed out after %v", d)
	}
}

// TestAutoconfigAndHealthz: the Thunderbird document on both paths names
// the configured IMAP server; /healthz answers from the store.
func TestAutoconfigAndHealthz(t *testing.T) {
	cfg := writeConfig(t, `
domains = ["example.org"]
[autoconfig]
imap_host = "mail.example.org"
imap_port = 993
imap_socket_type = "SSL"
smtp_host = "smtp.example.org"
`)
	s := startServer(t, "--config", cfg)
	type server struct {
		Type           string `xml:"type,attr"`
		Hostname       string `xml:"hostname"`
		Port           int    `xml:"port"`
		SocketType     string `xml:"socketType"`
		Authentication string `xml:"authentication"`
		Username       string `xml:"username"`
	}
	var doc struct {
		XMLName  xml.Name `xml:"clientConfig"`
		Provider struct {
			ID       string   `xml:"id,attr"`
			Domains  []string `xml:"domain"`
			Incoming []server `xml:"incomingServer"`
			Outgoing []server `xml:"outgoingServer"`
		} `xml:"emailProvider"`
	}
	for _, p := range []string{"/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml?emailaddress=alice%40example.org"} {
		resp, err := http.Get("http://" + s.http + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/xml") {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if err := autoconfig.Validate(body); err != nil {
			t.Fatalf("%s: %v\n%s", p, err, body)
		}
		doc.Provider.Domains, doc.Provider.Incoming, doc.Provider.Outgoing = nil, nil, nil
		if err := xml.Unmarshal(body, &doc); err != nil {
			t.Fatalf("%s: %v\n%s", p, err, body)
		}
		in, out := doc.Provider.Incoming, doc.Provider.Outgoing
		if doc.Provider.ID != "example.org" || len(in) != 1 ||
			in[0] != (server{"imap", "mail.example.org", 993, "SSL", "password-cleartext", "%EMAILADDRESS%"}) {
			t.Fatalf("%s: %+v\n%s", p, doc, body)
		}
		if len(out) != 1 || out[0].Hostname != "smtp.example.org" || out[0].Port != 587 || out[0].SocketType != "STARTTLS" {
			t.Fatalf("%s: outgoing %+v", p, out)
		}
	}
	resp, err := http.Get("http://" + s.http + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
}

// TestLimitsFromConfig: the [limits] of the config reach the IMAP server:
// mailbox count, APPEND size (refused before the data is sent), failed
// logins, connections per address; an over-long command line is refused
// and costs no memory.
func TestLimitsFromConfig(t *testing.T) {
	cfg := writeConfig(t, `
[limits]
max_message_size = "4KiB"
max_mailboxes = 9
max_connections_per_ip = 4
max_sessions_per_user = 2
loopback_exempt = false
login_free_failures = 1
login_max_failures = 3
login_delay = "100ms"
login_lockout = "1m"
`)
	s := startServer(t, "--config", cfg)
	s.addUser("dora", "dora-pw") // 8 mailboxes
	c := imapLogin(t, s.imap, "dora", "dora-pw")
	if err := c.Create("Ninth", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	err := c.Create("Tenth", nil).Wait()
	if err == nil || !strings.Contains(err.Error(), "LIMIT") {
		t.Fatalf("10th mailbox: %v", err)
	}
	// The session limit counts this session until the server has closed
	// it, which happens just after it answers LOGOUT.
	c.Logout().Wait()
	c.Close()
	time.Sleep(300 * time.Millisecond)

	conn, br := rawIMAP(t, s.imap)
	send := func(line string) { conn.Write([]byte(line)) }
	read := func() string {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return strings.TrimRight(l, "\r\n")
	}
	send("a1 LOGIN dora dora-pw\r\n")
	if l := read(); !strings.HasPrefix(l, "a1 OK") || !strings.Contains(l, "APPENDLIMIT=4096") {
		t.Fatalf("login: %s", l)
	}
	// {5000} is refused before the client sends the data: no "+".
	send("a2 APPEND INBOX {5000}\r\n")
	if l := read(); !strings.HasPrefix(l, "a2 NO [TOOBIG]") {
		t.Fatalf("APPEND over the limit: %s", l)
	}
	send("a3 NOOP\r\n")
	if l := read(); !strings.HasPrefix(l, "a3 OK") {
		t.Fatalf("after the refused APPEND: %s", l)
	}
	// A third session for dora: refused.
	c2, br2 := rawIMAP(t, s.imap)
	c2.Write([]byte("b1 LOGIN dora dora-pw\r\n"))
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, _ := br2.ReadString('\n')
	if !strings.HasPrefix(l, "b1 OK") {
		t.Fatalf("second session: %s", l)
	}
	c3, br3 := rawIMAP(t, s.imap)
	c3.Write([]byte("c1 LOGIN dora dora-pw\r\n"))
	c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, _ = br3.ReadString('\n')
	if !strings.HasPrefix(l, "c1 NO [LIMIT] too many sessions for dora (limit 2)") {
		t.Fatalf("third session: %s", l)
	}
	// A fifth connection from this address (4 open): BYE.
	c4, _ := rawIMAP(t, s.imap)
	c5, err := net.Dial("tcp", s.imap)
	if err != nil {
		t.Fatal(err)
	}
	c5.SetReadDeadline(time.Now().Add(10 * time.Second))
	g, _ := io.ReadAll(c5)
	if !strings.HasPrefix(string(g), "* BYE too many connections from your address (limit 4)") {
		t.Fatalf("fifth connection: %q", g)
	}
	c5.Close()
	c4.Close()
	c3.Close()
	c2.Close()

	// A 1 MiB command line: a BYE saying why, and the connection closed
	// before the server reads more of it.
	go send("a4 NOOP " + strings.Repeat("x", 1<<20) + "\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, _ := io.ReadAll(br)
	if string(rest) != "* BYE command line too long (limit 49152 bytes)\r\n" {
		t.Fatalf("1 MiB line: %q", rest)
	}
	conn.Close()

	// Failed logins: the third locks the account and the address out.
	waitUntil(t, "connection slots", 5*time.Second, func() bool {
		c, br := rawIMAP(t, s.imap)
		defer c.Close()
		return br != nil
	})
	lc, lbr := rawIMAP(t, s.imap)
	var last string
	for i := 1; i <= 4; i++ {
		lc.Write([]byte(fmt.Sprintf("f%d LOGIN dora wrong%d\r\n", i, i)))
		lc.SetReadDeadline(time.Now().Add(10 * time.Second))
		last, _ = lbr.ReadString('\n')
	}
	if !strings.HasPrefix(last, "f4 NO [AUTHENTICATIONFAILED] too many failed logins, try again in") {
		t.Fatalf("fourth failed login: %q", last)
	}
	lc.Write([]byte("f5 LOGIN dora dora-pw\r\n"))
	if l, _ := lbr.ReadString('\n'); !strings.HasPrefix(l, "f5 NO [AUTHENTICATIONFAILED] too many failed logins") {
		t.Fatalf("right password while locked out: %q", l)
	}
	// Each limit leaves a log line (read from the server's output, which
	// arrives a little after the responses).
	for _, want := range []string{"mailbox limit reached", "login refused: too many sessions",
		"connection refused: too many connections", "login locked out", "login refused: too many failed logins",
		"connection closed: command line too long"} {
		waitUntil(t, "log line "+want, 5*time.Second, func() bool { return strings.Contains(s.logText(), want) })
	}
}

// rawIMAP connects and reads the greeting; br is nil when it was a BYE.
func rawIMAP(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	br := bufio.NewReader(conn)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	g, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(g, "* OK") {
		return conn, nil
	}
	return conn, br
}

// TestIndexIdleFromConfig: with [limits] index_idle, the server drops the
// index of a mailbox nobody reads and, after mail arrived meanwhile, an
// IMAP client still sees every message with the right counts.
func TestIndexIdleFromConfig(t *testing.T) {
	cfg := writeConfig(t, "log_level = \"debug\"\n[limits]\nindex_idle = \"1s\"\n")
	s := startServer(t, "--config", cfg)
	s.addUser("ivy", "ivy-pw")
	status := func() *imap.StatusData {
		t.Helper()
		c := imapLogin(t, s.imap, "ivy", "ivy-pw")
		defer c.Close()
		st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		c.Logout().Wait()
		return st
	}
	if out, err := s.lmtpSend(t, "ivy@example.org", "Subject: one\r\n\r\nfirst\r\n"); err != nil {
		t.Fatalf("LMTP: %v\n%s", err, out)
	}
	if st := status(); *st.NumMessages != 1 {
		t.Fatalf("STATUS before eviction: %d messages", *st.NumMessages)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(s.logText(), "mailbox indexes evicted") {
		if time.Now().After(deadline) {
			t.Fatalf("no index evicted within 15 s:\n%s", s.logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, err := s.lmtpSend(t, "ivy@example.org", "Subject: two\r\n\r\nsecond\r\n"); err != nil {
		t.Fatalf("LMTP: %v\n%s", err, out)
	}
	if st := status(); *st.NumMessages != 2 || *st.NumUnseen != 2 {
		t.Fatalf("STATUS after eviction: %d messages, %d unseen", *st.NumMessages, *st.NumUnseen)
	}
}
