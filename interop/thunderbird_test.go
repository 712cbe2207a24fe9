package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestThunderbird drives a real Thunderbird (Debian's, headless, remote
// controlled through Marionette) against certmail, as a recipient would
// use it: initial sync, a delivery seen through IDLE, a flag and a delete
// reaching the server, and a certified item acknowledged by moving its
// stub into Acknowledge, with M in INBOX within seconds and no refresh.
func TestThunderbird(t *testing.T) {
	bin := requireTool(t, "thunderbird")
	requireTool(t, "swaks")
	start := time.Now()
	// Thunderbird reaches IMAP through a logging proxy; the autoconfig
	// document names the proxy's port (and, for its host, the address
	// the document was fetched from: 127.0.0.1).
	proxy := startTBProxy(t)
	_, proxyPort, _ := splitHostPort(proxy.addr())
	s := startServer(t, "--config", writeConfig(t, fmt.Sprintf(`
hostname = "mail.example.org"
domains = ["example.org"]
[autoconfig]
imap_port = %s
`, proxyPort)))
	proxy.forward(s.imap)
	s.addUser("alice", "alice-pw")
	s.deliverSwaks("alice@example.org", "first", "first body")
	s.deliverSwaks("alice@example.org", "second", "second body")

	home := t.TempDir()
	profile := filepath.Join(home, "profile")
	if err := os.MkdirAll(profile, 0o700); err != nil {
		t.Fatal(err)
	}

	// Bootstrap: the account is set up as Thunderbird's account hub does
	// it, with Thunderbird's own code: certmail's autoconfig document
	// fetched and read (readFromXML, which refuses a document it does not
	// like), the address and password filled in, the login verified, the
	// account created with the password remembered. Then quit, so that
	// prefs and logins are written, and start again as a user would.
	tb := startThunderbird(t, bin, home, profile)
	var acct struct {
		Type, Hostname, Username, Email string
		Port, SocketType, AuthMethod    int
		BiffMinutes                     int
	}
	tb.js(60*time.Second, `
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
return { type: s.type, hostname: s.hostname, port: s.port, username: s.username, email: account.defaultIdentity.email,
  socketType: s.socketType, authMethod: s.authMethod, biffMinutes: s.biffMinutes };`, &acct,
		"http://"+s.http+"/.well-known/autoconfig/mail/config-v1.1.xml", "alice@example.org", "alice-pw")
	host, _, _ := splitHostPort(proxy.addr())
	if acct.Type != "imap" || acct.Hostname != host || acct.Port != mustAtoi(t, proxyPort) || acct.Username != "alice@example.org" ||
		acct.Email != "alice@example.org" || acct.SocketType != 0 || acct.AuthMethod != 3 || acct.BiffMinutes != 10 {
		// A 10-minute poll: nothing the test waits for below can come
		// from polling.
		t.Fatalf("account from the autoconfig document: %+v; want imap on %s, plain, cleartext password, user alice@example.org, a 10-minute poll", acct, proxy.addr())
	}
	tb.quit()
	t.Logf("%5.1fs account set up from the autoconfig document", time.Since(start).Seconds())

	tb = startThunderbird(t, bin, home, profile)
	t.Logf("%5.1fs thunderbird started", time.Since(start).Seconds())

	// Initial sync: Thunderbird logs in at startup and fetches INBOX.
	tb.waitInbox(30*time.Second, "initial sync: both messages", func(hs []tbHeader) bool {
		return hasSubject(hs, "first") && hasSubject(hs, "second")
	})
	t.Logf("%5.1fs initial sync done", time.Since(start).Seconds())
	// Thunderbird identifies itself (ID, RFC 2971), which the server logs,
	// and compresses (COMPRESS=DEFLATE, RFC 4978) when offered: what
	// follows in this test goes through certmail's compression.
	if !logHas(s.logText(), `msg="imap client id"`, "client=Thunderbird") {
		t.Errorf("no ID from Thunderbird in the server's log")
	}
	if !strings.Contains(strings.ToUpper(proxy.text()), " COMPRESS DEFLATE") {
		t.Errorf("Thunderbird did not send COMPRESS DEFLATE")
	}

	// The user opens INBOX (a click: Thunderbird selects it and syncs), as
	// they would before dragging a message out of it.
	tb.js(10*time.Second, `
const about3Pane = Services.wm.getMostRecentWindow("mail:3pane").gTabmail.currentAbout3Pane;
about3Pane.displayFolder(folderNamed("INBOX").URI);
if (about3Pane.gFolder?.URI != folderNamed("INBOX").URI) throw new Error("INBOX not displayed");`, nil)

	// A new delivery reaches Thunderbird through IDLE on INBOX, without a
	// poll (check_time is 10 minutes) or a click.
	delivered := time.Now()
	s.deliverSwaks("alice@example.org", "third", "third body")
	tb.waitInbox(10*time.Second, "a new delivery seen through IDLE", func(hs []tbHeader) bool { return hasSubject(hs, "third") })
	t.Logf("%5.1fs new delivery seen in %v", time.Since(start).Seconds(), time.Since(delivered).Round(time.Millisecond))

	// A flag set in Thunderbird reaches the server.
	tb.js(20*time.Second, `
const inbox = folderNamed("INBOX");
const hdr = [...inbox.msgDatabase.enumerateMessages()].find(h => h.mime2DecodedSubject == arguments[0]);
inbox.markMessagesFlagged([hdr], true);`, nil, "first")
	waitServer(t, 10*time.Second, "\\Flagged from Thunderbird on the server", func() bool {
		m, ok := serverMessages(t, s.imap, "alice", "alice-pw", "INBOX")["first"]
		return ok && slices.Contains(m, imap.FlagFlagged)
	})
	t.Logf("%5.1fs flag on the server", time.Since(start).Seconds())

	// Delete is a move to Trash (Thunderbird's default for IMAP).
	tb.js(20*time.Second, `
const inbox = folderNamed("INBOX");
const hdr = [...inbox.msgDatabase.enumerateMessages()].find(h => h.mime2DecodedSubject == arguments[0]);
inbox.deleteMessages([hdr], null, false, false, null, true);`, nil, "second")
	// 30 s: the move is Thunderbird's first use of Trash, and on a loaded
	// CI machine it once took longer than 10 s.
	waitServer(t, 30*time.Second, "the deleted message in Trash and out of INBOX", func() bool {
		_, inInbox := serverMessages(t, s.imap, "alice", "alice-pw", "INBOX")["second"]
		_, inTrash := serverMessages(t, s.imap, "alice", "alice-pw", "Trash")["second"]
		return !inInbox && inTrash
	})
	t.Logf("%5.1fs delete moved to Trash", time.Since(start).Seconds())
	// Thunderbird finishes a move with a NOOP, a UID FETCH and, two
	// seconds later, IDLE again. A delivery inside that window was seen
	// to be announced (* n EXISTS right after + idling) yet not acted on
	// by Thunderbird 153 until its next poll; the next step is about
	// the acknowledging move, not that window, so it starts once the
	// connection that moved is idling again.
	waitServer(t, 15*time.Second, "Thunderbird idling again after the move to Trash", func() bool {
		return idleAfterMove(proxy.text())
	})

	// A certified item: its stub arrives through IDLE; Thunderbird's own
	// move of the stub into Acknowledge acknowledges it, and M must show
	// up in Thunderbird's INBOX within seconds, with no refresh after the
	// move (the poll is 10 minutes away).
	const mBody = "the summons for alice"
	mID := "<" + strings.ReplaceAll(mBody, " ", "-") + "@court.example>"
	if out, err := s.lmtpSend(t, "alice@example.org", certifiedMessage("Certified-Delivery: deadline=48h; reveal=sender-subject\r\n", mBody)); err != nil {
		t.Fatalf("certified delivery: %v\n%s", err, out)
	}
	var stub tbHeader
	tb.waitInbox(10*time.Second, "the certified stub", func(hs []tbHeader) bool {
		for _, h := range hs {
			if !slices.Contains([]string{"first", "third"}, h.Subject) {
				stub = h
				return true
			}
		}
		return false
	})
	if "<"+stub.MessageID+">" == mID {
		t.Fatalf("INBOX shows M itself before acknowledgement: %+v", stub)
	}
	t.Logf("%5.1fs stub seen: %+v", time.Since(start).Seconds(), stub)
	// The move is made as the drop handler of the thread pane makes it
	// (about3Pane.js): the copy service with the window's msgWindow.
	moved := time.Now()
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
	t.Logf("%5.1fs stub moved to Acknowledge", time.Since(start).Seconds())
	tb.waitInbox(10*time.Second, "M in INBOX after the acknowledging move, without a refresh", func(hs []tbHeader) bool {
		for _, h := range hs {
			if "<"+h.MessageID+">" == mID {
				return true
			}
		}
		return false
	})
	t.Logf("%5.1fs M seen in Thunderbird %v after the move", time.Since(start).Seconds(), time.Since(moved).Round(time.Millisecond))
	var left []tbHeader
	tb.js(10*time.Second, `return headers(folderNamed("INBOX"));`, &left)
	if slices.ContainsFunc(left, func(h tbHeader) bool { return h.UID == stub.UID }) {
		t.Errorf("the stub is still in Thunderbird's INBOX: %+v", left)
	}
	if ack := serverMessages(t, s.imap, "alice", "alice-pw", "Acknowledge"); len(ack) != 1 {
		t.Errorf("Acknowledge on the server should hold the receipt alone: %v", ack)
	}
	inbox := serverMessages(t, s.imap, "alice", "alice-pw", "INBOX")
	if _, ok := inbox["Summons"]; !ok || len(inbox) != 3 {
		t.Errorf("INBOX on the server should hold first, third and M: %v", inbox)
	}
	tb.quit()
}

// tbHeader is a message as Thunderbird's folder database has it.
type tbHeader struct {
	UID       uint32 `json:"uid"`
	MessageID string `json:"messageId"`
	Subject   string `json:"subject"`
	Flagged   bool   `json:"flagged"`
}

// idleAfterMove reports whether the proxy transcript shows an IDLE sent,
// after the last UID MOVE, on the connection that sent the move.
func idleAfterMove(transcript string) bool {
	lines := strings.Split(transcript, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		// "  7.311 C3 > 50 uid move 2 "Trash""
		if len(f) >= 6 && f[2] == ">" && strings.EqualFold(f[4], "uid") && strings.EqualFold(f[5], "move") {
			for _, l := range lines[i+1:] {
				g := strings.Fields(l)
				if len(g) == 5 && g[1] == f[1] && g[2] == ">" && strings.EqualFold(g[4], "IDLE") {
					return true
				}
			}
			return false
		}
	}
	return false
}

func hasSubject(hs []tbHeader, subject string) bool {
	return slices.ContainsFunc(hs, func(h tbHeader) bool { return h.Subject == subject })
}

// waitInbox waits at most timeout for Thunderbird's INBOX database to
// satisfy ok, reading it every 100 ms, and never asks Thunderbird to
// update the folder: what it shows is what it learnt by itself.
func (tb *thunderbird) waitInbox(timeout time.Duration, what string, ok func([]tbHeader) bool) {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	var hs []tbHeader
	for {
		hs = nil
		tb.js(10*time.Second, `const f = folderNamed("INBOX"); return f ? headers(f) : [];`, &hs)
		if ok(hs) {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: not in Thunderbird's INBOX after %v; it shows %+v", what, timeout, hs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitServer waits at most timeout for ok, checked every 100 ms.
func waitServer(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serverMessages reads mailbox over IMAP with go-imap's client (read-only)
// and returns each message's flags by subject.
func serverMessages(t *testing.T, addr, user, password, mailbox string) map[string][]imap.Flag {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("examine %s: %v", mailbox, err)
	}
	out := map[string][]imap.Flag{}
	if sel.NumMessages == 0 {
		return out
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true, Flags: true}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", mailbox, err)
	}
	for _, m := range msgs {
		out[m.Envelope.Subject] = m.Flags
	}
	return out
}
