package interop

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// findProgram looks a program up in PATH and in the sbin directories,
// which a non-login root shell may lack.
func findProgram(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	t.Fatalf("%s is not installed; run `make test-deps` (or apt-get install postfix)", name)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// postfixMasterCF is a minimal master.cf: no chroot (the queue is in a
// temp directory), smtpd only on the test's loopback port, and the log
// written by postlogd to a file (there is no syslog here).
const postfixMasterCF = `%s inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// postfixMainCF is the README's Postfix setup, with private directories:
// virtual mailbox domain example.org, recipients listed in a map made
// from `certmail user list`, delivery over LMTP to certmail.
const postfixMainCF = `compatibility_level = 3.6
queue_directory = {{dir}}/spool
data_directory = {{dir}}/data
maillog_file = {{dir}}/postfix.log
# maillog_file must be under one of these (default: /var, /dev/stdout).
maillog_file_prefixes = {{dir}}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.org
mydomain = example.org
myorigin = $mydomain
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtputf8_enable = no
biff = no
# Deliver at once and retry soon: a test does not wait for the defaults.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
virtual_mailbox_domains = example.org
virtual_mailbox_maps = texthash:{{dir}}/etc/certmail-recipients
virtual_transport = lmtp:inet:{{lmtp}}
`

// postfixInstance is a private Postfix (its own config, queue and data
// directories, smtpd on a loopback port) delivering over LMTP.
type postfixInstance struct {
	smtp string // smtpd's address
	log  func() string
}

// startPostfix starts a private Postfix instance whose virtual_transport
// is lmtp:inet:LMTP, accepting mail for recipients@example.org (the map
// the README's script makes from `certmail user list`); it is stopped
// when t ends.
func startPostfix(t *testing.T, lmtp string, recipients []string) *postfixInstance {
	t.Helper()
	postfix := findProgram(t, "postfix")
	if os.Geteuid() != 0 {
		t.Fatal("a private Postfix instance needs root to start (its daemons switch to the postfix user); CI runs as root")
	}
	// Postfix's daemons run as the postfix user and must reach the queue:
	// the temp directories are opened up to them.
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	for _, d := range []string{"etc", "spool", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := exec.Command("chown", "postfix", filepath.Join(dir, "data")).Run(); err != nil {
		t.Fatalf("chown data_directory: %v", err)
	}
	p := &postfixInstance{smtp: freeAddr(t)}
	main := strings.NewReplacer("{{dir}}", dir, "{{lmtp}}", lmtp).Replace(postfixMainCF)
	os.WriteFile(filepath.Join(dir, "etc", "main.cf"), []byte(main), 0o644)
	os.WriteFile(filepath.Join(dir, "etc", "master.cf"), []byte(fmt.Sprintf(postfixMasterCF, p.smtp)), 0o644)
	var rcpts strings.Builder
	for _, u := range recipients {
		fmt.Fprintf(&rcpts, "%s@example.org OK\n", u)
	}
	os.WriteFile(filepath.Join(dir, "etc", "certmail-recipients"), []byte(rcpts.String()), 0o644)

	etc := filepath.Join(dir, "etc")
	logFile := filepath.Join(dir, "postfix.log")
	p.log = func() string { b, _ := os.ReadFile(logFile); return string(b) }
	if out, err := exec.Command(postfix, "-c", etc, "check").CombinedOutput(); err != nil {
		t.Fatalf("postfix check: %v\n%s", err, out)
	}
	if out, err := exec.Command(postfix, "-c", etc, "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, p.log())
	}
	t.Cleanup(func() {
		if out, err := exec.Command(postfix, "-c", etc, "stop").CombinedOutput(); err != nil {
			t.Errorf("postfix stop: %v\n%s", err, out)
		}
		if t.Failed() {
			t.Logf("postfix log:\n%s", p.log())
		}
	})
	waitUntil(t, "postfix's smtpd", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", p.smtp)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// send submits a message to Postfix over SMTP with swaks.
func (p *postfixInstance) send(to, subject, body string) (string, error) {
	host, port, _ := net.SplitHostPort(p.smtp)
	cmd := exec.Command("swaks", "--server", host, "--port", port, "--from", "sender@elsewhere.example",
		"--to", to, "--header", "Subject: "+subject, "--body", body)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestPostfixDeliversOverLMTP runs a private Postfix instance (its own
// config, queue and data directories, loopback only) in front of
// certmail: swaks submits over SMTP, Postfix refuses an unknown recipient
// itself (the map generated from `certmail user list`) and delivers the
// rest over LMTP, and the message is read back over IMAP.
func TestPostfixDeliversOverLMTP(t *testing.T) {
	findProgram(t, "postfix")
	requireTool(t, "swaks")
	s := startServer(t)
	s.addUser("alice", "alice-pw")
	s.addUser("bob", "bob-pw")
	pf := startPostfix(t, s.lmtp, strings.Fields(s.run("", "user", "list", "--data", s.data)))

	out, err := pf.send("alice@example.org", "via postfix", "through Postfix to certmail")
	if err != nil {
		t.Fatalf("swaks to alice: %v\n%s", err, out)
	}
	// An unknown recipient is refused by Postfix at RCPT, before any mail
	// is queued for certmail.
	out, err = pf.send("nobody@example.org", "via postfix", "to nobody")
	if err == nil || !strings.Contains(out, "550 5.1.1") {
		t.Fatalf("unknown recipient: %v\n%s", err, out)
	}

	var bodies []string
	waitUntil(t, "the message in alice's INBOX", 30*time.Second, func() bool {
		bodies = inboxBodies(t, s.imap, "alice", "alice-pw")
		return len(bodies) == 1
	})
	if !strings.Contains(bodies[0], "through Postfix to certmail") || !strings.Contains(bodies[0], "Received: from") {
		t.Fatalf("alice's message:\n%s", bodies[0])
	}
	waitUntil(t, "postfix to log the LMTP delivery", 10*time.Second, func() bool {
		_, lmtpPort, _ := net.SplitHostPort(s.lmtp)
		return strings.Contains(pf.log(), "relay=127.0.0.1[127.0.0.1]:"+lmtpPort) &&
			strings.Contains(pf.log(), "status=sent (250 2.0.0 <alice@example.org>")
	})
}
