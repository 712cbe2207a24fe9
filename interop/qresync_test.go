package interop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The offline-client resync scenario (issue 12) with a real client that
// speaks QRESYNC: neomutt (Debian's neomutt package), chosen because it is
// a packaged, scriptable client that keeps a header cache and resyncs it
// with RFC 7162 when imap_condstore and imap_qresync are set. The
// NeoMutt 20220429 in Debian 12 resyncs with ENABLE QRESYNC, SELECT
// (CONDSTORE) and UID FETCH 1:n (FLAGS) (CHANGEDSINCE m VANISHED)
// (RFC 7162 section 3.2.6), not with SELECT ... (QRESYNC ...); after a
// VANISHED it also re-reads every message's flags (its own check of its
// sequence numbers), so the expunge step checks the server's VANISHED
// (EARLIER) line itself rather than trusting the final view alone.
//
// The scenario runs against any IMAP server through resyncTarget, so the
// same harness checks itself against Dovecot.

// resyncTarget is a server the scenario runs against.
type resyncTarget struct {
	imap, user, pass string
	// deliver puts a new ordinary message into the user's INBOX.
	deliver func(t *testing.T, subject string)
	// hold puts a certified item's stub into INBOX; release, run by
	// another session c, acknowledges it so that the stub leaves INBOX
	// and M arrives.
	hold    func(t *testing.T)
	release func(t *testing.T, c *imapclient.Client)
}

// lineProxy forwards one IMAP server and keeps a transcript of both
// directions, line by line ("C: " what the client sent, "S: " the server).
type lineProxy struct {
	ln  net.Listener
	mu  sync.Mutex
	log strings.Builder
}

func startLineProxy(t *testing.T, target string) *lineProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lineProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(c, s, "C: ")
			go p.pipe(s, c, "S: ")
		}
	}()
	return p
}

func (p *lineProxy) pipe(from, to net.Conn, dir string) {
	defer to.Close()
	defer from.Close()
	br := bufio.NewReader(from)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			p.mu.Lock()
			p.log.WriteString(dir + strings.TrimRight(line, "\r\n") + "\n")
			p.mu.Unlock()
			if _, werr := io.WriteString(to, line); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// take returns the transcript so far and starts a new one.
func (p *lineProxy) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.log.String()
	p.log.Reset()
	return s
}

// neomutt runs neomutt once against the proxy with a header cache in dir:
// it opens INBOX (syncing the cache), copies every message of its view to
// export (an mbox, whose Status and X-Status headers carry the flags as
// neomutt knows them), and quits. It needs a terminal: script(1) gives it
// one.
func runNeomutt(t *testing.T, dir, proxy, user, pass, export string) {
	t.Helper()
	bin := requireTool(t, "neomutt")
	script := requireTool(t, "script")
	rc := filepath.Join(dir, "muttrc")
	conf := fmt.Sprintf(`set imap_user=%s
set imap_pass=%s
set folder=imap://%s/
set spoolfile=+INBOX
set header_cache=%s/hcache/
set imap_condstore=yes
set imap_qresync=yes
set imap_passive=yes
set mark_old=no
set move=no
set quit=yes
set delete=yes
set confirmappend=no
set confirmcreate=no
set mbox_type=mbox
set sort=mailbox-order
set ssl_starttls=no
set ssl_force_tls=no
set mail_check_stats=no
push "<tag-pattern>~A<enter><tag-prefix><copy-message>%s<enter><quit>"
`, user, pass, proxy, dir, export)
	if err := os.MkdirAll(filepath.Join(dir, "hcache"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(rc, " '\"\\$`") {
		t.Fatalf("temporary path %q needs quoting", rc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qfec", bin+" -n -F "+rc, "/dev/null")
	cmd.Env = append(os.Environ(), "HOME="+dir, "TERM=xterm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("neomutt: %v\n%s", err, out)
	}
	if _, err := os.Stat(export); err != nil {
		t.Fatalf("neomutt exported nothing (%v); its screen:\n%s", err, out)
	}
}

// viewEntry is one message as a client shows it: Message-ID and the flags
// an mbox export carries (\Seen, \Answered, \Flagged).
func viewEntry(msgid string, seen, answered, flagged bool) string {
	var fs []string
	if answered {
		fs = append(fs, `\Answered`)
	}
	if flagged {
		fs = append(fs, `\Flagged`)
	}
	if seen {
		fs = append(fs, `\Seen`)
	}
	return strings.Trim(msgid, "<> ") + " (" + strings.Join(fs, " ") + ")"
}

// mboxView reads neomutt's export: one entry per message, sorted.
func mboxView(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var msgid, status, xstatus string
	inHeader := false
	flush := func() {
		if msgid != "" || status != "" || xstatus != "" {
			out = append(out, viewEntry(msgid, strings.Contains(status, "R"), strings.Contains(xstatus, "A"), strings.Contains(xstatus, "F")))
		}
		msgid, status, xstatus = "", "", ""
	}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "From ") {
			flush()
			inHeader = true
			continue
		}
		if !inHeader {
			continue
		}
		if line == "" {
			inHeader = false
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "message-id":
			msgid = strings.TrimSpace(v)
		case "status":
			status = strings.TrimSpace(v)
		case "x-status":
			xstatus = strings.TrimSpace(v)
		}
	}
	flush()
	slices.Sort(out)
	return out
}

// serverView is the server's INBOX in the same form, and the UIDs.
func serverView(t *testing.T, c *imapclient.Client) ([]string, []imap.UID) {
	t.Helper()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var uids []imap.UID
	for _, m := range msgs {
		out = append(out, viewEntry(m.Envelope.MessageID,
			slices.Contains(m.Flags, imap.FlagSeen), slices.Contains(m.Flags, imap.FlagAnswered), slices.Contains(m.Flags, imap.FlagFlagged)))
		uids = append(uids, m.UID)
	}
	slices.Sort(out)
	slices.Sort(uids)
	return out, uids
}

func store(t *testing.T, c *imapclient.Client, uid imap.UID, op imap.StoreFlagsOp, flags ...imap.Flag) {
	t.Helper()
	if err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil {
		t.Fatalf("STORE %d: %v", uid, err)
	}
}

var (
	// A flag fetch of every message, not of the changes only.
	fullFlagFetchRE = regexp.MustCompile(`(?m)^C: \S+ (UID )?FETCH 1:\S+ \((UID )?FLAGS( UID)?\)$`)
	vanishedRE      = regexp.MustCompile(`(?m)^S: \* VANISHED \(EARLIER\) (\S+)$`)
)

// usedQRESYNC fails unless the session enabled QRESYNC and resynced with
// it: SELECT ... (QRESYNC ...) or UID FETCH ... (CHANGEDSINCE m VANISHED).
func usedQRESYNC(t *testing.T, transcript string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^C: \S+ ENABLE .*QRESYNC`).MatchString(transcript) ||
		!regexp.MustCompile(`(?m)^S: \* ENABLED .*QRESYNC`).MatchString(transcript) {
		t.Fatalf("the client did not enable QRESYNC:\n%s", transcript)
	}
	if !regexp.MustCompile(`(?m)^C: \S+ (SELECT .*\(QRESYNC \(|UID FETCH .*\(CHANGEDSINCE \d+ VANISHED\))`).MatchString(transcript) {
		t.Fatalf("the client did not resync with QRESYNC:\n%s", transcript)
	}
}

// uidSet expands a VANISHED set (no huge ranges expected here).
func uidSet(t *testing.T, s string) []imap.UID {
	t.Helper()
	var out []imap.UID
	for _, r := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(r, ":")
		lo, err1 := strconv.ParseUint(a, 10, 32)
		hi, err2 := lo, error(nil)
		if isRange {
			hi, err2 = strconv.ParseUint(b, 10, 32)
		}
		if err1 != nil || err2 != nil || hi < lo || hi-lo > 1000 {
			t.Fatalf("VANISHED set %q", s)
		}
		for u := lo; u <= hi; u++ {
			out = append(out, imap.UID(u))
		}
	}
	slices.Sort(out)
	return out
}

// neomuttResync is the scenario: neomutt syncs INBOX; another session
// changes flags and a message arrives; neomutt resyncs; another session
// expunges two messages, acknowledges a certified stub (M is released into
// INBOX) and flags one more; neomutt resyncs again. After each resync the
// view neomutt exports equals the server's, and the transcript shows it
// got there with QRESYNC.
func neomuttResync(t *testing.T, tg resyncTarget) {
	dir := t.TempDir()
	proxy := startLineProxy(t, tg.imap)

	for i := 1; i <= 8; i++ {
		tg.deliver(t, fmt.Sprintf("resync %d", i))
	}
	tg.hold(t)
	c, err := imapclient.DialInsecure(tg.imap, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(tg.user, tg.pass).Wait(); err != nil {
		t.Fatal(err)
	}
	_, uids := serverView(t, c)
	if len(uids) != 9 {
		t.Fatalf("INBOX has %d messages, want 8 and a stub", len(uids))
	}
	for _, u := range uids[:4] {
		store(t, c, u, imap.StoreFlagsAdd, imap.FlagSeen)
	}

	// 1. The first sync fills neomutt's header cache.
	runNeomutt(t, dir, proxy.ln.Addr().String(), tg.user, tg.pass, filepath.Join(dir, "view1.mbox"))
	tr := proxy.take()
	want, _ := serverView(t, c)
	if got := mboxView(t, filepath.Join(dir, "view1.mbox")); !slices.Equal(got, want) {
		t.Fatalf("after the first sync neomutt shows\n%s\nthe server has\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// 2. Flag changes and a new message: a resync by the changes alone.
	store(t, c, uids[0], imap.StoreFlagsAdd, imap.FlagFlagged)
	store(t, c, uids[1], imap.StoreFlagsDel, imap.FlagSeen)
	store(t, c, uids[5], imap.StoreFlagsAdd, imap.FlagAnswered, imap.FlagSeen)
	tg.deliver(t, "resync new")
	runNeomutt(t, dir, proxy.ln.Addr().String(), tg.user, tg.pass, filepath.Join(dir, "view2.mbox"))
	tr = proxy.take()
	usedQRESYNC(t, tr)
	if m := fullFlagFetchRE.FindString(tr); m != "" {
		t.Fatalf("the client fetched every message's flags (%q) instead of the changes:\n%s", m, tr)
	}
	want, _ = serverView(t, c)
	if got := mboxView(t, filepath.Join(dir, "view2.mbox")); !slices.Equal(got, want) {
		t.Fatalf("after flag changes neomutt shows\n%s\nthe server has\n%s\ntranscript:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), tr)
	}

	// 3. Expunges, the certified release and one more flag change.
	_, before := serverView(t, c)
	store(t, c, uids[2], imap.StoreFlagsAdd, imap.FlagDeleted)
	store(t, c, uids[3], imap.StoreFlagsAdd, imap.FlagDeleted)
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	tg.release(t, c)
	store(t, c, uids[6], imap.StoreFlagsAdd, imap.FlagFlagged)
	want, after := serverView(t, c)
	var gone []imap.UID
	for _, u := range before {
		if !slices.Contains(after, u) {
			gone = append(gone, u)
		}
	}
	if len(gone) != 3 {
		t.Fatalf("%d messages left INBOX (%v), want the two expunged and the stub", len(gone), gone)
	}
	runNeomutt(t, dir, proxy.ln.Addr().String(), tg.user, tg.pass, filepath.Join(dir, "view3.mbox"))
	tr = proxy.take()
	usedQRESYNC(t, tr)
	m := vanishedRE.FindStringSubmatch(tr)
	if m == nil {
		t.Fatalf("the server sent no VANISHED (EARLIER):\n%s", tr)
	}
	if v := uidSet(t, m[1]); !slices.Equal(v, gone) {
		t.Fatalf("VANISHED (EARLIER) %s, want the UIDs %v:\n%s", m[1], gone, tr)
	}
	if got := mboxView(t, filepath.Join(dir, "view3.mbox")); !slices.Equal(got, want) {
		t.Fatalf("after expunges and the release neomutt shows\n%s\nthe server has\n%s\ntranscript:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), tr)
	}
	if err := os.WriteFile(filepath.Join(dir, "transcript.txt"), []byte(tr), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("last resync:\n%s", tr)
}

// TestNeomuttResyncHarnessDovecot runs the scenario against a private
// Dovecot (Debian's dovecot-imapd): a check of the harness itself, that a
// server known to implement QRESYNC passes it. The "certified" item there
// is an ordinary message moved away, and M an APPEND.
func TestNeomuttResyncHarnessDovecot(t *testing.T) {
	addr := startDovecotIMAP(t, "nm", "nm-pw")
	appendMsg := func(t *testing.T, c *imapclient.Client, subject string) {
		t.Helper()
		msg := fmt.Sprintf("From: sender@example.org\r\nTo: nm@example.org\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n\r\nbody of %s\r\n",
			subject, strings.ReplaceAll(subject, " ", "-"), subject)
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := io.WriteString(cmd, msg); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	session := func(t *testing.T) *imapclient.Client {
		c, err := imapclient.DialInsecure(addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login("nm", "nm-pw").Wait(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	tg := resyncTarget{imap: addr, user: "nm", pass: "nm-pw",
		deliver: func(t *testing.T, subject string) {
			c := session(t)
			defer c.Close()
			appendMsg(t, c, subject)
		},
		hold: func(t *testing.T) {
			c := session(t)
			defer c.Close()
			appendMsg(t, c, "stub")
			if err := c.Create("Acknowledge", nil).Wait(); err != nil {
				t.Fatal(err)
			}
		},
		release: func(t *testing.T, c *imapclient.Client) {
			data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "stub"}}}, nil).Wait()
			if err != nil || len(data.AllUIDs()) != 1 {
				t.Fatalf("the stub: %v %v", data, err)
			}
			if _, err := c.Move(imap.UIDSetNum(data.AllUIDs()[0]), "Acknowledge").Wait(); err != nil {
				t.Fatal(err)
			}
			appendMsg(t, c, "released M")
		},
	}
	neomuttResync(t, tg)
}

// startDovecotIMAP runs a private Dovecot IMAP server with one user and
// a Maildir under a temporary directory, on a loopback port.
func startDovecotIMAP(t *testing.T, name, pass string) string {
	t.Helper()
	bin := "/usr/sbin/dovecot"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("dovecot is not installed (%v); run `make test-deps`", err)
	}
	dir, err := os.MkdirTemp("", "interop-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Dovecot refuses root for its login processes and for mail: as root
	// (CI) it runs them as the Debian package's users and nobody.
	internal, login, mailUser := "", "", ""
	if me, err := user.Current(); err == nil && me.Uid != "0" {
		internal, login, mailUser = me.Username, me.Username, me.Username
	} else {
		internal, login, mailUser = "dovecot", "dovenull", "nobody"
	}
	u, err := user.Lookup(mailUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range []string{"run", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(dir, 0o755)
	if err := os.Chown(filepath.Join(dir, "mail"), uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(name+":{PLAIN}"+pass+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := strings.NewReplacer("{{dir}}", dir, "{{port}}", port, "{{internal}}", internal, "{{login}}", login,
		"{{uid}}", u.Uid, "{{gid}}", u.Gid).Replace(`base_dir = {{dir}}/run
state_dir = {{dir}}/run
log_path = {{dir}}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain login
disable_plaintext_auth = no
default_internal_user = {{internal}}
default_login_user = {{login}}
first_valid_uid = 1
mail_location = maildir:{{dir}}/mail/%n/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN {{dir}}/passwd
}
userdb {
  driver = static
  args = uid={{uid}} gid={{gid}} home={{dir}}/mail/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{port}}
  }
  inet_listener imaps {
    port = 0
  }
}
`)
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", confPath)
	out, err := os.Create(filepath.Join(dir, "dovecot.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if i == 200 {
			b, _ := os.ReadFile(filepath.Join(dir, "dovecot.stderr"))
			l, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot did not start: %v\n%s\n%s", err, b, l)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
