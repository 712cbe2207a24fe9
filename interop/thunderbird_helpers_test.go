package interop

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"
	"golang.org/x/sys/unix"
)

// thunderbird is a headless Thunderbird on a private profile, remote
// controlled through Marionette.
type thunderbird struct {
	t       *testing.T
	bin     string
	home    string // private HOME
	profile string
	port    string // Marionette's, on 127.0.0.1
	cmd     *exec.Cmd
	exited  chan struct{}
	mu      sync.Mutex
	out     strings.Builder
	m       *marionette
}

// tbPrefs keep Thunderbird off the network, apart from the loopback
// addresses the test names (as IP literals: with DNS off no name resolves),
// and quiet: no updates, telemetry, safe browsing, remote settings, captive
// portal or connectivity probes, OCSP, ISP autoconfig lookups, start page,
// default-client check or notifications.
var tbPrefs = map[string]any{
	"network.dns.disabled":                                        true,
	"network.proxy.type":                                          0,
	"network.captive-portal-service.enabled":                      false,
	"network.connectivity-service.enabled":                        false,
	"network.http.speculative-parallel-limit":                     0,
	"network.prefetch-next":                                       false,
	"security.OCSP.enabled":                                       0,
	"security.remote_settings.crlite_filters.enabled":             false,
	"services.settings.server":                                    "data:,#remote-settings-off/v1",
	"app.update.disabledForTesting":                               true,
	"app.update.auto":                                             false,
	"extensions.update.enabled":                                   false,
	"extensions.getAddons.cache.enabled":                          false,
	"extensions.systemAddon.update.enabled":                       false,
	"datareporting.policy.dataSubmissionEnabled":                  false,
	"datareporting.healthreport.uploadEnabled":                    false,
	"toolkit.telemetry.enabled":                                   false,
	"toolkit.telemetry.unified":                                   false,
	"toolkit.telemetry.server":                                    "",
	"browser.safebrowsing.malware.enabled":                        false,
	"browser.safebrowsing.phishing.enabled":                       false,
	"browser.safebrowsing.downloads.enabled":                      false,
	"browser.safebrowsing.provider.google4.updateURL":             "",
	"browser.safebrowsing.provider.mozilla.updateURL":             "",
	"mailnews.auto_config.fetchFromISP.enabled":                   false,
	"mailnews.auto_config.guess.enabled":                          false,
	"mailnews.auto_config_url":                                    "",
	"mailnews.start_page.enabled":                                 false,
	"mail.shell.checkDefaultClient":                               false,
	"mail.rights.override":                                        true,
	"mail.biff.show_alert":                                        false,
	"mail.biff.play_sound":                                        false,
	"mail.cloud_files.enabled":                                    false,
	"mail.provider.enabled":                                       false,
	"mailnews.headers.showUserAgent":                              false,
	"browser.dom.window.dump.enabled":                             true,
	"toolkit.startup.max_resumed_crashes":                         -1,
	"browser.shell.checkDefaultBrowser":                           false,
	"datareporting.policy.dataSubmissionPolicyBypassNotification": true,
}

// startThunderbird writes user.js (tbPrefs, the Marionette port) into
// profile and starts Thunderbird on it, with a private HOME and env added
// to its environment.
func startThunderbird(t *testing.T, bin, home, profile string, env ...string) *thunderbird {
	t.Helper()
	tb := &thunderbird{t: t, bin: bin, home: home, profile: profile}
	_, tb.port, _ = splitHostPort(freeAddr(t))
	var b strings.Builder
	write := func(k string, v any) {
		j, _ := json.Marshal(v)
		fmt.Fprintf(&b, "user_pref(%q, %s);\n", k, j)
	}
	for k, v := range tbPrefs {
		write(k, v)
	}
	write("marionette.port", mustAtoi(t, tb.port))
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tb.cmd = exec.Command(bin, "--headless", "--marionette", "--remote-allow-system-access", "--no-remote", "--profile", profile)
	tb.cmd.Env = append(filteredEnv("DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS", "HOME", "XDG_"),
		"HOME="+home, "MOZ_HEADLESS=1", "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"), "XDG_DATA_HOME="+filepath.Join(home, ".local/share"),
		"MOZ_CRASHREPORTER_DISABLE=1", "MOZ_DISABLE_AUTO_SAFE_MODE=1")
	tb.cmd.Env = append(tb.cmd.Env, env...)
	// Its own process group, so that cleanup ends its helper processes too.
	tb.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	tb.cmd.Stdout, tb.cmd.Stderr = pw, pw
	if err := tb.cmd.Start(); err != nil {
		t.Fatalf("starting thunderbird: %v", err)
	}
	tb.exited = make(chan struct{})
	go func() {
		// Wait for the exit without reaping, so that the process group
		// still belongs to Thunderbird while its leftover helpers are
		// ended, then reap.
		var info unix.Siginfo
		unix.Waitid(unix.P_PID, tb.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		syscall.Kill(-tb.cmd.Process.Pid, syscall.SIGKILL)
		tb.cmd.Wait()
		pw.Close()
		close(tb.exited)
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			// Headless GTK complains about the screen it has not got.
			if l := sc.Text(); l == "" || strings.Contains(l, "gtk_icon_theme") || strings.Contains(l, "Gtk-CRITICAL") {
				continue
			}
			tb.mu.Lock()
			tb.out.WriteString(sc.Text() + "\n")
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(tb.stop)
	m, err := dialMarionette("127.0.0.1:"+tb.port, time.Now().Add(60*time.Second), tb.exited)
	if err != nil {
		t.Fatalf("%v\nthunderbird output:\n%s", err, tb.output())
	}
	tb.m = m
	if err := m.startChromeSession(); err != nil {
		t.Fatalf("%v\nthunderbird output:\n%s", err, tb.output())
	}
	return tb
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// filteredEnv is the environment without the variables named (or, for a
// name ending in _, starting so).
func filteredEnv(drop ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		for _, d := range drop {
			if k == d || strings.HasSuffix(d, "_") && strings.HasPrefix(k, d) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

func (tb *thunderbird) output() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.out.String()
}

// js runs script in Thunderbird's chrome context (see marionette.exec),
// failing the test on error.
func (tb *thunderbird) js(timeout time.Duration, script string, out any, args ...any) {
	tb.t.Helper()
	if err := tb.m.exec(timeout, tbPrelude+script, out, args...); err != nil {
		tb.t.Fatalf("thunderbird script: %v", err)
	}
}

// tbPrelude gives scripts MailServices and a way to find folders.
const tbPrelude = `
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const folderNamed = name => {
  const root = MailServices.accounts.defaultAccount.incomingServer.rootFolder;
  if (name == "INBOX") return root.getFolderWithFlags(Ci.nsMsgFolderFlags.Inbox);
  return root.getChildNamed(name);
};
const headers = folder => [...folder.msgDatabase.enumerateMessages()].map(h => ({
  uid: h.messageKey, messageId: h.messageId, subject: h.mime2DecodedSubject,
  flagged: h.isFlagged, read: h.isRead,
}));
`

// quit asks Thunderbird to quit and waits for it, so that it writes its
// profile (prefs, logins) out.
func (tb *thunderbird) quit() {
	tb.t.Helper()
	if tb.m != nil {
		// The answer may never come: the connection closes as it quits.
		tb.m.call(20*time.Second, "Marionette:Quit", map[string]any{"flags": []string{"eAttemptQuit"}}, nil)
		tb.m.Close()
		tb.m = nil
	}
	select {
	case <-tb.exited:
	case <-time.After(30 * time.Second):
		tb.t.Fatalf("thunderbird did not quit in 30s\n%s", tb.output())
	}
}

// stop ends Thunderbird and its helper processes (its process group).
func (tb *thunderbird) stop() {
	if tb.m != nil {
		tb.m.Close()
		tb.m = nil
	}
	select {
	case <-tb.exited:
	default:
		syscall.Kill(-tb.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-tb.exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-tb.cmd.Process.Pid, syscall.SIGKILL)
			<-tb.exited
		}
	}
	if tb.t.Failed() {
		tb.t.Logf("thunderbird output:\n%s", tb.output())
	}
}

// tbProxy sits between a client and a server on loopback and records
// every line either way with its time, for the log of a failed test: the
// quickest way to see what Thunderbird sent and what it was told. It
// listens at once, so that its port can go into the server's
// configuration, and forwards to the target set later.
type tbProxy struct {
	ln     net.Listener
	start  time.Time
	target chan string // holds the target once known
	mu     sync.Mutex
	log    strings.Builder
	conns  int
}

func startTBProxy(t *testing.T) *tbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tbProxy{ln: ln, start: time.Now(), target: make(chan string, 1)}
	var wg sync.WaitGroup
	var openMu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		select { // wake the accept loop if no target was ever set
		case p.target <- "":
		default:
		}
		openMu.Lock()
		for _, c := range open {
			c.Close()
		}
		openMu.Unlock()
		wg.Wait()
		if t.Failed() {
			t.Logf("IMAP traffic through the proxy (client >, server <):\n%s", p.text())
		}
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		target := <-p.target
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
			openMu.Lock()
			open = append(open, c, s)
			openMu.Unlock()
			p.mu.Lock()
			p.conns++
			id := p.conns
			p.mu.Unlock()
			wg.Add(2)
			tc := &tbConn{}
			go func() { defer wg.Done(); p.copy(s, c, fmt.Sprintf("C%d >", id), tc) }()
			go func() { defer wg.Done(); p.copy(c, s, fmt.Sprintf("C%d <", id), tc) }()
		}
	}()
	return p
}

// forward sets the server the proxy forwards to.
func (p *tbProxy) forward(target string) { p.target <- target }

func (p *tbProxy) addr() string { return p.ln.Addr().String() }

// tbConn is what the two directions of one proxied connection share:
// whether COMPRESS DEFLATE (RFC 4978) was asked for, under which tag, and
// the server's verdict.
type tbConn struct {
	mu      sync.Mutex
	tag     string    // of a COMPRESS DEFLATE the client sent
	verdict chan bool // the server's answer to it: OK or not
}

// copy copies src to dst, recording each line (the first 300 bytes of it).
// Once COMPRESS DEFLATE succeeds (Thunderbird uses it when offered), what
// follows in each direction is forwarded as it comes and recorded
// decompressed, so that the transcript stays readable.
func (p *tbProxy) copy(dst, src net.Conn, tag string, tc *tbConn) {
	defer dst.Close()
	fromClient := strings.HasSuffix(tag, ">")
	r := bufio.NewReader(src)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if _, werr := dst.Write(line); werr != nil {
				return
			}
			p.record(tag, line)
		}
		if err != nil {
			return
		}
		f := strings.Fields(string(line))
		compressed := false
		tc.mu.Lock()
		switch {
		case fromClient && len(f) == 3 && strings.EqualFold(f[1], "COMPRESS") && strings.EqualFold(f[2], "DEFLATE"):
			tc.tag = f[0]
			tc.verdict = make(chan bool, 1)
		case !fromClient && tc.tag != "" && len(f) >= 2 && f[0] == tc.tag:
			tc.verdict <- f[1] == "OK"
			compressed = f[1] == "OK"
			tc.tag = ""
		}
		verdict := tc.verdict
		tc.mu.Unlock()
		if fromClient && verdict != nil && len(f) == 3 && strings.EqualFold(f[1], "COMPRESS") {
			select {
			case compressed = <-verdict:
			case <-time.After(30 * time.Second):
				return
			}
		}
		if compressed {
			p.copyCompressed(dst, r, tag)
			return
		}
	}
}

// copyCompressed forwards r's raw DEFLATE stream and records it
// decompressed. klauspost's reader, since a client may flush with zlib's
// Z_PARTIAL_FLUSH, after which the standard library's returns nothing.
func (p *tbProxy) copyCompressed(dst net.Conn, r io.Reader, tag string) {
	pr, pw := io.Pipe()
	go func() {
		lr := bufio.NewReader(kflate.NewReaderOpts(pr, kflate.WithPartialBlock()))
		for {
			line, err := lr.ReadBytes('\n')
			if len(line) > 0 {
				p.record(tag, line)
			}
			if err != nil {
				pr.CloseWithError(err)
				return
			}
		}
	}()
	defer pw.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			pw.Write(buf[:n]) // fails once the recorder stopped: ignored
		}
		if err != nil {
			return
		}
	}
}

func (p *tbProxy) record(tag string, line []byte) {
	shown := strings.TrimRight(string(line), "\r\n")
	if len(shown) > 300 {
		shown = shown[:300] + "..."
	}
	p.mu.Lock()
	if p.log.Len() < 4<<20 {
		fmt.Fprintf(&p.log, "%7.3f %s %s\n", time.Since(p.start).Seconds(), tag, shown)
	}
	p.mu.Unlock()
}

func (p *tbProxy) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}
