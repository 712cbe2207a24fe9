package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5"

	"certmail/kv/pgkv/pgtest"
)

// TestScaleOutBehindHAProxy follows docs/scale-out.md as a new operator
// does, on one machine: a PostgreSQL cluster (private: pgtest) with the
// certmail role and database of section 1, two `certmail serve` nodes
// whose configuration is the guide's TOML block (section 2: the same
// gateway name, the password from a file, the same certificate), node a
// started first and its gateway.key copied to node b (section 3), and
// HAProxy from Debian, in the foreground, on the guide's HAProxy block
// (section 4), as the one address in front. Only addresses and paths
// differ from what the guide prints, each substitution declared below and
// required to match, so that the guide cannot drift from what runs here.
//
// Through that one address: Postfix delivers over LMTP, a headless
// Thunderbird sets itself up from the autoconfig document (fetched over
// HTTPS from the proxy), syncs over STARTTLS and sees deliveries, the
// sender API (curl) submits a certified item whose stub Thunderbird moves
// into Acknowledge, M is released into Thunderbird's INBOX, and the
// evidence bundle fetched from the API verifies. Then node a is killed
// with SIGKILL and all of it is done again through the same address,
// node a is started again, node b killed, and once more. In the end
// every node, and the proxy, show each delivery and each released M
// exactly once, and the receipts in Acknowledge.
func TestScaleOutBehindHAProxy(t *testing.T) {
	haproxyBin := findProgram(t, "haproxy")
	findProgram(t, "postfix")
	tbBin := requireTool(t, "thunderbird")
	curl := requireTool(t, "curl")
	requireTool(t, "swaks")
	if os.Geteuid() != 0 {
		t.Fatal("Postfix needs root to start (its daemons switch to the postfix user); CI runs as root")
	}
	start := time.Now()
	step := func(format string, args ...any) {
		t.Helper()
		t.Logf("%5.1fs %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	guide := readScaleOutGuide(t)

	// Section 1: the database, a role with a password and a database it
	// owns (what `createuser --pwprompt certmail` and `createdb --owner
	// certmail certmail` do), on a cluster of the test's own.
	pg := pgtest.Start(t)
	dbPassword := randomHex(t, 16)
	pgAdmin(t, pg.DSN("postgres"),
		"CREATE ROLE certmail LOGIN PASSWORD '"+dbPassword+"'",
		"CREATE DATABASE certmail OWNER certmail")
	step("PostgreSQL %s on port %d, role and database certmail", pg.Version(), pg.Port())

	// mail.example.org's certificate, from a CA of the test's own: what
	// the nodes and the proxy present, and what the clients trust.
	tlsDir := t.TempDir()
	ca := writeTestCA(t, tlsDir)

	// Section 2: the password in a file only certmail reads; each node's
	// configuration is the guide's, with this machine's addresses.
	etc := t.TempDir()
	pwFile := filepath.Join(etc, "db.password")
	if err := os.WriteFile(pwFile, []byte(dbPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy := struct{ imap, lmtp, https string }{freeAddr(t), freeAddr(t), freeAddr(t)}
	_, proxyIMAPPort, _ := net.SplitHostPort(proxy.imap)
	nodes := make([]*scaleNode, 2)
	for i, name := range []string{"a", "b"} {
		n := &scaleNode{t: t, name: name, data: t.TempDir(), imap: freeAddr(t), lmtp: freeAddr(t), http: freeAddr(t)}
		n.config = filepath.Join(etc, "certmail-"+name+".toml")
		toml := substitute(t, "the TOML block", guide.toml, [][2]string{
			{`data = "/var/lib/certmail"`, fmt.Sprintf("data = %q", n.data)},
			{`node = "a"`, fmt.Sprintf("node = %q", name)},
			// Debian's cluster has TLS; the private one has none.
			{"postgres://certmail@db1:5432/certmail?sslmode=require", fmt.Sprintf("postgres://certmail@127.0.0.1:%d/certmail?sslmode=disable", pg.Port())},
			{"/etc/certmail/db.password", pwFile},
			{`"0.0.0.0:1143"`, fmt.Sprintf("%q", n.imap)},
			// The guide names node a's own addresses and says b's in a
			// comment: each node gets its own here.
			{`"10.0.0.11:2424"`, fmt.Sprintf("%q", n.lmtp)},
			{`"10.0.0.12:2424"`, fmt.Sprintf("%q", n.lmtp)},
			{`"10.0.0.11:8080"`, fmt.Sprintf("%q", n.http)},
			// HAProxy connects to the nodes from 127.0.0.1.
			{`proxy_protocol_from = ["10.0.0.10"]`, `proxy_protocol_from = ["127.0.0.1"]`},
			{"/etc/certmail/tls/fullchain.pem", ca.certFile},
			{"/etc/certmail/tls/privkey.pem", ca.keyFile},
			// Thunderbird here resolves no names (network.dns.disabled).
			{`imap_host = "mail.example.org"`, `imap_host = "127.0.0.1"`},
			{"imap_port = 143", "imap_port = " + proxyIMAPPort},
		})
		if err := os.WriteFile(n.config, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		// `certmail config check` says what the guide says it says.
		out := certmailOut(t, "config", "check", n.config)
		wantStore := fmt.Sprintf("store: PostgreSQL postgres://certmail@127.0.0.1:%d/certmail, password from %s, node %s", pg.Port(), pwFile, name)
		if first, _, _ := strings.Cut(out, "\n"); first != n.config+": ok" || !strings.Contains(out, wantStore) {
			t.Fatalf("config check %s:\n%s\nwant ok, then %q", name, out, wantStore)
		}
		nodes[i] = n
	}
	a, b := nodes[0], nodes[1]

	// Section 3: node a first (it creates the store and gateway.key),
	// its key copied to node b, then b; accounts and a sender token made
	// against the database.
	a.start()
	key, err := os.ReadFile(filepath.Join(a.data, "gateway.key"))
	if err != nil {
		t.Fatalf("node a made no gateway.key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(b.data, "gateway.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	step("nodes a and b serving")
	runStdin(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--config", a.config)
	token := strings.TrimSpace(certmailOut(t, "token", "add", "acme", "--config", b.config))

	// Section 4: HAProxy on the guide's block, in the foreground, with a
	// global section that logs to its stdout (Debian's logs to syslog).
	hapCfg := substitute(t, "the HAProxy block", guide.haproxy, [][2]string{
		{"bind :143", "bind " + proxy.imap},
		{"bind 10.0.0.10:2424", "bind " + proxy.lmtp},
		{"bind :443 ssl crt /etc/haproxy/mail.example.org.pem", "bind " + proxy.https + " ssl crt " + ca.haproxyPEM},
		{"10.0.0.11:1143", a.imap}, {"10.0.0.12:1143", b.imap},
		{"10.0.0.11:2424", a.lmtp}, {"10.0.0.12:2424", b.lmtp},
		{"10.0.0.11:8080", a.http}, {"10.0.0.12:8080", b.http},
	})
	if strings.Contains(hapCfg, "10.0.0.") {
		t.Fatalf("an address of the guide's HAProxy block is not mapped here:\n%s", hapCfg)
	}
	hapFile := filepath.Join(etc, "haproxy.cfg")
	if err := os.WriteFile(hapFile, []byte("global\n    log stdout format raw local0\n\n"+hapCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxyBin, "-c", "-f", hapFile).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	hap := startProc(t, "haproxy", haproxyBin, "-db", "-f", hapFile)
	for _, addr := range []string{proxy.imap, proxy.lmtp, proxy.https} {
		hap.waitListening(addr)
	}
	step("HAProxy in front: IMAP %s, LMTP %s, HTTPS %s", proxy.imap, proxy.lmtp, proxy.https)

	// Postfix delivers to the proxy's LMTP address.
	pf := startPostfix(t, proxy.lmtp, strings.Fields(certmailOut(t, "user", "list", "--config", a.config)))
	postfixSend := func(subject string) {
		t.Helper()
		if out, err := pf.send("alice@example.org", subject, "body of "+subject); err != nil {
			t.Fatalf("swaks to Postfix: %v\n%s", err, out)
		}
	}
	postfixSend("before thunderbird")
	step("Postfix started, one message sent")

	// The sender API through the proxy, over HTTPS.
	api := func(method, path string, body []byte) (int, []byte) {
		t.Helper()
		args := []string{"-sS", "--max-time", "30", "--cacert", ca.caFile, "-X", method,
			"-H", "Authorization: Bearer " + token, "-w", "\n%{http_code}"}
		if body != nil {
			args = append(args, "-H", "Content-Type: application/json", "--data-binary", "@-")
		}
		cmd := exec.Command(curl, append(args, "https://"+proxy.https+path)...)
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %s %s: %v\n%s", method, path, err, out)
		}
		i := bytes.LastIndexByte(out, '\n')
		var status int
		fmt.Sscan(string(out[i+1:]), &status)
		return status, out[:i]
	}

	// Thunderbird: the account set up from the autoconfig document, as
	// its account hub does (see TestThunderbird), fetched from the proxy
	// over HTTPS; the CA is trusted in its certificate store first, as an
	// operator's users trust a public CA.
	home := t.TempDir()
	profile := filepath.Join(home, "profile")
	if err := os.MkdirAll(profile, 0o700); err != nil {
		t.Fatal(err)
	}
	tb := startThunderbird(t, tbBin, home, profile)
	var acct struct {
		Hostname, Username string
		Port, SocketType   int
	}
	tb.js(60*time.Second, `
const certdb = Cc["@mozilla.org/security/x509certdb;1"].getService(Ci.nsIX509CertDB);
certdb.addCertFromBase64(arguments[3], "C,,");
const { fetchHTTP } = ChromeUtils.importESModule("resource:///modules/accountcreation/FetchHTTP.sys.mjs");
const { readFromXML } = ChromeUtils.importESModule("resource:///modules/accountcreation/readFromXML.sys.mjs");
const { AccountConfig } = ChromeUtils.importESModule("resource:///modules/accountcreation/AccountConfig.sys.mjs");
const { ConfigVerifier } = ChromeUtils.importESModule("resource:///modules/accountcreation/ConfigVerifier.sys.mjs");
const { CreateInBackend } = ChromeUtils.importESModule("resource:///modules/accountcreation/CreateInBackend.sys.mjs");
const [url, email, password] = arguments;
const xml = await fetchHTTP(url, { urlArgs: { emailaddress: email }, timeout: 10000 });
const config = readFromXML(xml, "isp-http");
AccountConfig.replaceVariables(config, "Alice", email, password);
config.rememberPassword = true;
const win = Services.wm.getMostRecentWindow("mail:3pane");
const verified = await new ConfigVerifier(win.msgWindow, new AbortController().signal).verifyConfig(config, false);
const account = await CreateInBackend.createAccountInBackend(verified);
const s = account.incomingServer;
return { hostname: s.hostname, port: s.port, username: s.username, socketType: s.socketType };`, &acct,
		"https://"+proxy.https+"/.well-known/autoconfig/mail/config-v1.1.xml", "alice@example.org", "alice-pw", ca.caBase64)
	// socketType 2 is STARTTLS (nsMsgSocketType.alwaysSTARTTLS).
	if acct.Hostname != "127.0.0.1" || acct.Port != mustAtoi(t, proxyIMAPPort) || acct.SocketType != 2 || acct.Username != "alice@example.org" {
		t.Fatalf("account from the autoconfig document: %+v; want the proxy, 127.0.0.1:%s, STARTTLS, user alice@example.org", acct, proxyIMAPPort)
	}
	tb.quit()
	// Thunderbird's own IMAP log (TLS hides the traffic from HAProxy's
	// log), shown if the test fails: the commands and answers it saw.
	imapLog := filepath.Join(home, "imap.log")
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(imapLog + "*")
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				if len(b) > 256<<10 {
					b = b[len(b)-256<<10:]
				}
				t.Logf("Thunderbird's IMAP log %s:\n%s", f, b)
			}
		}
	})
	tb = startThunderbird(t, tbBin, home, profile, "MOZ_LOG=IMAP:5,timestamp,sync", "MOZ_LOG_FILE="+imapLog)
	tb.waitInbox(30*time.Second, "initial sync through the proxy", func(hs []tbHeader) bool { return hasSubject(hs, "before thunderbird") })
	displayed := time.Now()
	tb.js(10*time.Second, `
const about3Pane = Services.wm.getMostRecentWindow("mail:3pane").gTabmail.currentAbout3Pane;
about3Pane.displayFolder(folderNamed("INBOX").URI);
if (about3Pane.gFolder?.URI != folderNamed("INBOX").URI) throw new Error("INBOX not displayed");`, nil)
	step("Thunderbird set up from the autoconfig document, synced over STARTTLS through the proxy")

	gatewayKey := filepath.Join(etc, "gateway.pem")
	certmailOut(t, "evidence", "--gateway-key-out", gatewayKey, "--config", a.config)

	// round does everything once through the proxy: a Postfix delivery
	// seen by Thunderbird, a certified item submitted over the API, its
	// stub moved into Acknowledge by Thunderbird, M released into
	// Thunderbird's INBOX, the bundle fetched over the API verified. Each
	// server-side event waits until Thunderbird idles on INBOX: an EXISTS
	// that reaches Thunderbird 153 in the answer to its own UID FETCH
	// (FLAGS), which a delivery committed while the command runs gets, is
	// not acted on until its next poll, ten minutes away (seen in its IMAP
	// log; see also thunderbird-testing's MOVE case).
	var labels []string
	round := func(name string, since time.Time) {
		t.Helper()
		wait := func(what string, ok func([]tbHeader) bool) {
			t.Helper()
			tb.waitInbox(15*time.Second, what, ok)
		}
		subject := "postfix " + name
		waitTBIdle(t, imapLog, since)
		since = time.Now()
		postfixSend(subject)
		wait(subject+", delivered by Postfix", func(hs []tbHeader) bool { return hasSubject(hs, subject) })
		step("%s: Postfix's delivery in Thunderbird", name)

		var before []tbHeader
		tb.js(10*time.Second, `return headers(folderNamed("INBOX"));`, &before)
		mID := "notice-" + strings.ReplaceAll(name, " ", "-") + "@court.example"
		msg := "From: Court Clerk <clerk@court.example>\r\nSubject: Notice " + name + "\r\nMessage-ID: <" + mID + ">\r\n\r\nPay by Friday (" + name + ").\r\n"
		req, _ := json.Marshal(map[string]any{"message": msg, "recipients": []string{"alice"}, "deadline": "1h"})
		waitTBIdle(t, imapLog, since)
		since = time.Now()
		status, body := api("POST", "/v1/items", req)
		var sub struct {
			Items []struct{ Label string } `json:"items"`
		}
		if err := json.Unmarshal(body, &sub); status != 201 || err != nil || len(sub.Items) != 1 {
			t.Fatalf("%s: submission through the proxy: %d %s %v", name, status, body, err)
		}
		label := sub.Items[0].Label
		labels = append(labels, label)
		var stub tbHeader
		wait("the stub of "+label, func(hs []tbHeader) bool {
			for _, h := range hs {
				if !slices.ContainsFunc(before, func(b tbHeader) bool { return b.UID == h.UID }) {
					stub = h
					return true
				}
			}
			return false
		})
		if stub.MessageID == mID {
			t.Fatalf("%s: INBOX shows M before acknowledgement: %+v", name, stub)
		}
		step("%s: submitted %s over the API, stub in Thunderbird", name, label)
		waitTBIdle(t, imapLog, since)
		tb.js(30*time.Second, `
const inbox = folderNamed("INBOX");
const ack = folderNamed("Acknowledge");
if (!ack) throw new Error("Thunderbird does not know the Acknowledge folder");
const hdr = [...inbox.msgDatabase.enumerateMessages()].find(h => h.messageKey == arguments[0]);
await new Promise((resolve, reject) => {
  MailServices.copy.copyMessages(inbox, [hdr], ack, true, {
    QueryInterface: ChromeUtils.generateQI(["nsIMsgCopyServiceListener"]),
    onStartCopy() {}, onProgress() {}, setMessageKey() {}, getMessageId() { return null; },
    onStopCopy(status) { Components.isSuccessCode(status) ? resolve() : reject(new Error("move failed: " + status)); },
  }, Services.wm.getMostRecentWindow("mail:3pane").msgWindow, true);
});`, nil, stub.UID)
		wait("M of "+label+" after the acknowledging move", func(hs []tbHeader) bool {
			return slices.ContainsFunc(hs, func(h tbHeader) bool { return h.MessageID == mID })
		})
		step("%s: stub moved into Acknowledge by Thunderbird, M released", name)

		status, bundle := api("GET", "/v1/items/"+label+"/evidence", nil)
		if status != 200 {
			t.Fatalf("%s: evidence through the proxy: %d %s", name, status, bundle)
		}
		bundleFile := filepath.Join(etc, label+".json")
		if err := os.WriteFile(bundleFile, bundle, 0o600); err != nil {
			t.Fatal(err)
		}
		if out := certmailOut(t, "verify", bundleFile, "--gateway-key", gatewayKey); !strings.Contains(out, "VERIFIED") {
			t.Fatalf("%s: verify:\n%s", name, out)
		}
		step("%s: the bundle from the API verifies", name)
	}

	round("both nodes", displayed)

	// Either node alone: each killed in turn with SIGKILL, the other
	// serving everything through the same address; HAProxy's checks see
	// the dead node down and, once it runs again, up.
	down := func(n *scaleNode) {
		t.Helper()
		n.kill()
		step("node %s killed (SIGKILL)", n.name)
		// Thunderbird's session on the dead node is cut; a click on
		// INBOX makes it look again, through the proxy, on a live node.
		clicked := time.Now()
		tb.js(10*time.Second, `folderNamed("INBOX").updateFolder(Services.wm.getMostRecentWindow("mail:3pane").msgWindow);`, nil)
		round("node "+n.name+" down", clicked)
		for _, be := range []string{"imap", "lmtp", "http"} {
			hap.waitFor(fmt.Sprintf("Server %s/%s is DOWN", be, n.name), 15*time.Second)
		}
		mark := hap.len()
		n.start()
		for _, be := range []string{"imap", "lmtp", "http"} {
			hap.waitForAfter(mark, fmt.Sprintf("Server %s/%s is UP", be, n.name), 15*time.Second)
		}
		step("node %s started again, up in HAProxy", n.name)
	}
	down(a)
	down(b)
	tb.quit()

	// Every delivery and every released M once, the receipts in
	// Acknowledge, through the proxy and on each node. The client reading
	// through the proxy connects from 127.0.0.3, and the node it reaches
	// logs that address, not the proxy's: HAProxy's PROXY protocol header
	// names it. Nodes are read directly from 127.0.0.2, an address that
	// sends no header (a connection from the proxy's address without one
	// is closed).
	wantInbox := []string{"before thunderbird"}
	for _, r := range []string{"both nodes", "node a down", "node b down"} {
		wantInbox = append(wantInbox, "postfix "+r, "Notice "+r)
	}
	for _, where := range []struct{ name, addr, from string }{
		{"the proxy", proxy.imap, "127.0.0.3"}, {"node a", a.imap, "127.0.0.2"}, {"node b", b.imap, "127.0.0.2"},
	} {
		c := imapLoginFrom(t, where.from, where.addr)
		counts := subjectCounts(t, c, "INBOX")
		for _, s := range wantInbox {
			if counts[s] != 1 {
				t.Errorf("%s: %q is in INBOX %d times, want once (INBOX: %v)", where.name, s, counts[s], counts)
			}
		}
		if total(counts) != len(wantInbox) {
			t.Errorf("%s: INBOX holds %v, want each of %q once", where.name, counts, wantInbox)
		}
		if ack := subjectCounts(t, c, "Acknowledge"); total(ack) != len(labels) {
			t.Errorf("%s: Acknowledge holds %v, want the %d receipts", where.name, ack, len(labels))
		}
		c.Logout().Wait()
	}
	if !regexp.MustCompile(`msg=login .*user=alice remote=127\.0\.0\.3:\d+`).MatchString(a.p.text() + b.p.text()) {
		t.Errorf("no node logged the login from 127.0.0.3 through the proxy")
	}
	// HAProxy's checks and connections all came with their header.
	if logs := a.p.text() + b.p.text(); strings.Contains(logs, "no valid PROXY protocol header") {
		t.Errorf("a node refused a connection from HAProxy:\n%s", logs)
	}
	step("every message once, through the proxy and on each node")
}

// imapLoginFrom logs alice in over IMAP at addr from the local address
// from, with go-imap's client.
func imapLoginFrom(t *testing.T, from, addr string) *imapclient.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := imapclient.New(conn, nil)
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", "alice-pw").Wait(); err != nil {
		t.Fatalf("login at %s from %s: %v", addr, from, err)
	}
	return c
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// subjectCounts counts the messages of mailbox by subject.
func subjectCounts(t *testing.T, c *imapclient.Client, mailbox string) map[string]int {
	t.Helper()
	out := map[string]int{}
	sel, err := c.Select(mailbox, nil).Wait()
	if err != nil {
		t.Fatalf("select %s: %v", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return out
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", mailbox, err)
	}
	for _, m := range msgs {
		out[m.Envelope.Subject]++
	}
	return out
}

// scaleOutGuide is what TestScaleOutBehindHAProxy takes from
// docs/scale-out.md: the node configuration and the HAProxy configuration.
type scaleOutGuide struct{ toml, haproxy string }

func readScaleOutGuide(t *testing.T) scaleOutGuide {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docs", "scale-out.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string][]string{}
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		info, ok := strings.CutPrefix(lines[i], "```")
		if !ok || info == "" {
			continue
		}
		var body []string
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		lang, _, _ := strings.Cut(info, " ")
		blocks[lang] = append(blocks[lang], strings.Join(body, "\n")+"\n")
	}
	if len(blocks["toml"]) != 1 || len(blocks["haproxy"]) != 1 {
		t.Fatalf("docs/scale-out.md should have one toml block (the node configuration) and one haproxy block; it has %d and %d",
			len(blocks["toml"]), len(blocks["haproxy"]))
	}
	return scaleOutGuide{toml: blocks["toml"][0], haproxy: blocks["haproxy"][0]}
}

// substitute replaces each pair's first string with its second in text;
// each must occur, or the guide changed under the test.
func substitute(t *testing.T, what, text string, pairs [][2]string) string {
	t.Helper()
	for _, p := range pairs {
		if !strings.Contains(text, p[0]) {
			t.Fatalf("docs/scale-out.md's %s no longer says %q: update TestScaleOutBehindHAProxy with the guide\n%s", what, p[0], text)
		}
		text = strings.ReplaceAll(text, p[0], p[1])
	}
	return text
}

// pgAdmin runs statements as the cluster's superuser.
func pgAdmin(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting as the superuser: %v", err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// runStdin runs the certmail binary with stdin, failing on error.
func runStdin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(certmailBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("certmail %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testCA is a CA of the test's own and mail.example.org's certificate
// (also for 127.0.0.1) issued by it, as files.
type testCA struct {
	caFile, caBase64  string // the CA certificate (PEM file; DER in base64)
	certFile, keyFile string // the server's certificate and key (PEM)
	haproxyPEM        string // both in one file, as HAProxy's crt wants
}

func writeTestCA(t *testing.T, dir string) testCA {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := func() *big.Int {
		n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	now := time.Now()
	caKey, leafKey := newKey(), newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "certmail test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "mail.example.org"},
		DNSNames: []string{"mail.example.org"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	ca := testCA{
		caFile: filepath.Join(dir, "ca.pem"), caBase64: base64.StdEncoding.EncodeToString(caDER),
		certFile: filepath.Join(dir, "fullchain.pem"), keyFile: filepath.Join(dir, "privkey.pem"),
		haproxyPEM: filepath.Join(dir, "mail.example.org.pem"),
	}
	for file, data := range map[string][]byte{
		ca.caFile:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		ca.certFile:   certPEM,
		ca.keyFile:    keyPEM,
		ca.haproxyPEM: append(append([]byte{}, certPEM...), keyPEM...),
	} {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca
}

// scaleNode is one `certmail serve --config` node of the guide.
type scaleNode struct {
	t                *testing.T
	name             string
	config, data     string
	imap, lmtp, http string
	p                *proc
}

func (n *scaleNode) start() {
	n.t.Helper()
	n.p = startProc(n.t, "node "+n.name, certmailBin, "serve", "--config", n.config)
	for _, addr := range []string{n.imap, n.lmtp, n.http} {
		n.p.waitListening(addr)
	}
}

// kill ends the node as a lost machine does: SIGKILL, nothing flushed.
func (n *scaleNode) kill() {
	n.p.cmd.Process.Kill()
	<-n.p.exited
}

// proc is a program the test runs in the foreground, its output kept.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	out    strings.Builder
}

// startProc starts a program; it is interrupted (then killed) when t
// ends, and its output logged if t failed.
func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	// A test binary that dies takes the program with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.exited:
			case <-time.After(20 * time.Second):
				p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.text())
		}
	})
	return p
}

func (p *proc) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Len()
}

func (p *proc) waitListening(addr string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not listen on %s:\n%s", p.name, addr, p.text())
		}
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited:\n%s", p.name, p.text())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitFor waits for s in the output.
func (p *proc) waitFor(s string, timeout time.Duration) { p.t.Helper(); p.waitForAfter(0, s, timeout) }

// waitForAfter waits for s in the output past its first mark bytes.
func (p *proc) waitForAfter(mark int, s string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.text()[mark:], s) {
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q from %s within %v", s, p.name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tbLogLine is a command Thunderbird sent, in its IMAP log (MOZ_LOG=IMAP:5):
// "2026-12-06 09:07:48.396536 UTC - [Parent 11461: IMAP]: I/IMAP
// 7f1d6ae1f600:127.0.0.1:S-INBOX:SendData: 83 IDLE".
var tbLogLine = regexp.MustCompile(`(?m)^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC - .*I/IMAP (\w+):[^:]*:S-INBOX:SendData: (.*)$`)

// waitTBIdle waits until Thunderbird's IMAP log shows a connection with
// INBOX selected whose last command is IDLE, sent after since (the last
// event Thunderbird was to see, or a kill after which only a connection
// opened later counts): it is then waiting for the server to announce
// what comes next.
func waitTBIdle(t *testing.T, logPath string, since time.Time) {
	t.Helper()
	waitServer(t, 20*time.Second, "Thunderbird idling on INBOX", func() bool {
		b, _ := os.ReadFile(logPath + ".moz_log")
		last := map[string]string{} // connection: its last command
		at := map[string]time.Time{}
		for _, m := range tbLogLine.FindAllStringSubmatch(string(b), -1) {
			when, _ := time.Parse("2006-01-02 15:04:05.999999", m[1])
			last[m[2]], at[m[2]] = m[3], when
		}
		for c, cmd := range last {
			if f := strings.Fields(cmd); len(f) == 2 && strings.EqualFold(f[1], "IDLE") && at[c].After(since) {
				return true
			}
		}
		return false
	})
}
