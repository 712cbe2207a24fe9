package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is one private mail server under test.
type server struct {
	name       string
	imap, lmtp string
	cmd        *exec.Cmd
	done       chan struct{}
	logPath    string
	// pprof is certmail's profiling address (CERTMAIL_PPROF), if any.
	pprof string
	// certmail on PostgreSQL (--store postgres): more are the nodes after
	// this first one, all serving one database of pg.
	more []*server
	pg   *pgStore
	// serve starts this process again (certmail: restart), nil for
	// Dovecot.
	serve func() (*server, error)
}

// restart stops the server's first process (certmail's first node; the
// database and the other nodes go on) and starts it again on the same
// data, for what a process does first (a mailbox's index loaded from the
// store, not memory). Dovecot keeps no index in memory between sessions:
// it is not restarted.
func (s *server) restart() error {
	if s.serve == nil {
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	n, err := s.serve()
	if err != nil {
		return fmt.Errorf("restarting %s: %w", s.name, err)
	}
	s.cmd, s.done, s.imap, s.lmtp = n.cmd, n.done, n.imap, n.lmtp
	return nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// pids are the server's own processes: every node's.
func (s *server) pids() []int {
	out := []int{s.pid()}
	for _, n := range s.more {
		out = append(out, n.pid())
	}
	return out
}

// cpuRoots are the processes whose CPU time the server's work costs:
// every node's, and the database's.
func (s *server) cpuRoots() []int {
	out := s.pids()
	if s.pg != nil {
		out = append(out, s.pg.pid())
	}
	return out
}

// imapAt and lmtpAt are the addresses for client i: several nodes take
// the clients round robin.
func (s *server) imapAt(i int) string {
	if i%(1+len(s.more)) == 0 {
		return s.imap
	}
	return s.more[i%(1+len(s.more))-1].imap
}

func (s *server) lmtpAt(i int) string {
	if i%(1+len(s.more)) == 0 {
		return s.lmtp
	}
	return s.more[i%(1+len(s.more))-1].lmtp
}

// stop asks the server (every node) to exit and waits, killing it after a
// while; then the PostgreSQL cluster, if any, is stopped and removed.
func (s *server) stop() {
	if s == nil {
		return
	}
	for _, n := range s.more {
		n.stop()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			// The process group: Dovecot's children too.
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	}
	if s.pg != nil {
		if err := s.pg.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "certbench:", err)
		}
		s.pg = nil
	}
}

// exited reports whether the server process (any node) has ended.
func (s *server) exited() bool {
	for _, n := range s.more {
		if n.exited() {
			return true
		}
	}
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// startProfile and stopProfile bracket a CPU profile of certmail.
func (s *server) startProfile(path string) error {
	if s.pprof == "" {
		return nil
	}
	resp, err := http.Post("http://"+s.pprof+"/cpuprofile/start?path="+path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("starting profile: %s", b)
	}
	return nil
}

func (s *server) stopProfile() error {
	if s.pprof == "" {
		return nil
	}
	resp, err := http.Post("http://"+s.pprof+"/cpuprofile/stop", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// saveHeap writes certmail's heap profile to path.
func (s *server) saveHeap(path string) error {
	if s.pprof == "" {
		return nil
	}
	resp, err := http.Get("http://" + s.pprof + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err = io.Copy(f, resp.Body); err != nil {
		return err
	}
	// The runtime's own accounting (heap, stacks, what is returned).
	resp2, err := http.Get("http://" + s.pprof + "/debug/pprof/heap?debug=1")
	if err != nil {
		return err
	}
	defer resp2.Body.Close()
	b, _ := io.ReadAll(resp2.Body)
	if i := bytes.Index(b, []byte("# runtime.MemStats")); i >= 0 {
		b = b[i:]
	}
	return os.WriteFile(strings.TrimSuffix(path, ".pprof")+"-memstats.txt", b, 0o644)
}

// saveMaps writes, per mapped file type, how much of the server's RSS
// the mappings hold (from /proc/<pid>/smaps), for diagnosis.
func (s *server) saveMaps(path string) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", s.pid()))
	if err != nil {
		return err
	}
	sums := map[string]int64{}
	kind := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			kind = "[anon]"
			if len(f) >= 6 {
				kind = filepath.Ext(f[5])
				if kind == "" {
					kind = f[5]
				}
			}
			continue
		}
		if len(f) >= 2 && f[0] == "Rss:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			sums[kind] += n
		}
	}
	var out bytes.Buffer
	for k, v := range sums {
		fmt.Fprintf(&out, "%10d kB  %s\n", v, k)
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// logTail is the end of the server's log (every node's), for error
// messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	out := string(b)
	for _, n := range s.more {
		out += "\n--- " + n.logPath + ":\n" + n.logTail()
	}
	return out
}

// buildCertmail builds cmd/certmail into dir.
func buildCertmail(dir string) (string, error) {
	bin := filepath.Join(dir, "certmail")
	cmd := exec.Command("go", "build", "-o", bin, "certmail/cmd/certmail")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building certmail (run certbench from the certmail module): %w", err)
	}
	return bin, nil
}

var listenRE = regexp.MustCompile(`msg=listening proto=(\w+) addr=(\S+)`)

// startCertmail creates the users with `certmail user add` and starts
// `certmail serve` on loopback ports the kernel picks.
func startCertmail(bin, dir string, users []string, password string, pprofAddr string) (*server, error) {
	data := filepath.Join(dir, "data")
	if err := addUsers(bin, data, nil, users, password); err != nil {
		return nil, err
	}
	return serveCertmail(bin, "certmail", dir, []string{"--data", data}, pprofAddr)
}

// addUsers runs `certmail user add` for each user on the store that
// data and storeArgs name.
func addUsers(bin, data string, storeArgs, users []string, password string) error {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	for _, u := range users {
		args := append([]string{"user", "add", u, "--password-stdin", "--data", data}, storeArgs...)
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(password + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("certmail user add %s: %v\n%s", u, err, out)
		}
	}
	return nil
}

// serveCertmail runs `certmail serve` with storeArgs (its data directory
// and store), logging to dir/certmail.log.
func serveCertmail(bin, name, dir string, storeArgs []string, pprofAddr string) (*server, error) {
	s := &server{name: name, done: make(chan struct{}), logPath: filepath.Join(dir, "certmail.log"), pprof: pprofAddr}
	s.serve = func() (*server, error) { return serveCertmail(bin, name, dir, storeArgs, pprofAddr) }
	// Appended to: a restarted server's log follows the first run's.
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	args := append(append([]string{"serve"}, storeArgs...), "--imap", "127.0.0.1:0", "--lmtp", "127.0.0.1:0", "--http", "")
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if pprofAddr != "" {
		cmd.Env = append(os.Environ(), "CERTMAIL_PPROF="+pprofAddr)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.cmd = cmd
	started := make(chan struct{})
	var mu sync.Mutex
	go func() {
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			logf.WriteString(line + "\n")
			if m := listenRE.FindStringSubmatch(line); m != nil {
				mu.Lock()
				switch m[1] {
				case "imap":
					s.imap = m[2]
				case "lmtp":
					s.lmtp = m[2]
				}
				mu.Unlock()
			}
			if strings.Contains(line, "certmail started") {
				once.Do(func() { close(started) })
			}
		}
		io.Copy(logf, stderr)
		cmd.Wait()
		close(s.done)
	}()
	select {
	case <-started:
	case <-s.done:
		return nil, fmt.Errorf("certmail serve exited at start:\n%s", s.logTail())
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("certmail serve did not start:\n%s", s.logTail())
	}
	mu.Lock()
	defer mu.Unlock()
	if s.imap == "" || s.lmtp == "" {
		s.stop()
		return nil, fmt.Errorf("certmail serve did not report its addresses:\n%s", s.logTail())
	}
	return s, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// dovecotIdentity is who Dovecot's processes run as. Dovecot refuses to
// run its login processes, and mail access, as root; when certbench runs
// as root (in CI) it uses the Debian package's unprivileged users for the
// services and nobody for mail, and says so.
type dovecotIdentity struct {
	internalUser, loginUser string
	mailUID, mailGID        int
	note                    string
}

func dovecotUsers() (dovecotIdentity, error) {
	me, err := user.Current()
	if err != nil {
		return dovecotIdentity{}, err
	}
	uid, _ := strconv.Atoi(me.Uid)
	gid, _ := strconv.Atoi(me.Gid)
	if uid != 0 {
		return dovecotIdentity{internalUser: me.Username, loginUser: me.Username, mailUID: uid, mailGID: gid}, nil
	}
	id := dovecotIdentity{internalUser: "nobody", loginUser: "nobody"}
	if _, err := user.Lookup("dovecot"); err == nil {
		id.internalUser = "dovecot"
	}
	if _, err := user.Lookup("dovenull"); err == nil {
		id.loginUser = "dovenull"
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		return dovecotIdentity{}, fmt.Errorf("running as root, Dovecot needs an unprivileged user for mail: %w", err)
	}
	id.mailUID, _ = strconv.Atoi(nobody.Uid)
	id.mailGID, _ = strconv.Atoi(nobody.Gid)
	id.note = fmt.Sprintf("running as root: Dovecot services run as %s/%s and mail as nobody (Dovecot refuses root)",
		id.internalUser, id.loginUser)
	return id, nil
}

const dovecotConf = `# certbench's private Dovecot: everything under one temporary directory.
base_dir = {{dir}}/run
state_dir = {{dir}}/state
log_path = {{dir}}/dovecot.log
info_log_path = {{dir}}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_username_format = %Ln
default_internal_user = {{internal}}
default_login_user = {{login}}
first_valid_uid = 1
# The default, spelled out: mails are fsynced before LMTP answers 250.
mail_fsync = optimized
mail_location = maildir:{{dir}}/mail/%n/Maildir
# Room for the idle workload's sessions (the defaults are 100 processes
# per service and 10 connections per user and IP).
default_process_limit = {{procs}}
default_client_limit = {{clients}}
mail_max_userip_connections = {{clients}}
passdb {
  driver = passwd-file
  args = scheme={{scheme}} {{dir}}/passwd
}
userdb {
  driver = static
  args = uid={{uid}} gid={{gid}} home={{dir}}/mail/%n
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
  mailbox Junk {
    special_use = \Junk
    auto = subscribe
  }
  mailbox Archive {
    special_use = \Archive
    auto = subscribe
  }
}
# COMPRESS=DEFLATE (RFC 4978), as certmail offers it: the idle workload
# compresses some of its sessions.
protocol imap {
  mail_plugins = $mail_plugins imap_zlib
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{imapport}}
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = {{lmtpport}}
  }
  unix_listener lmtp {
    mode = 0600
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
`

// startDovecot writes a private configuration and runs `dovecot -F`.
func startDovecot(bin, dir string, users []string, password, scheme string, maxSessions int) (*server, string, error) {
	id, err := dovecotUsers()
	if err != nil {
		return nil, "", err
	}
	for _, d := range []string{"run", "state", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, "", err
		}
	}
	if id.mailUID != os.Getuid() {
		// The mail user must reach its home under the temporary
		// directory (certbench's own, made 0700 by os.MkdirTemp).
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				os.Chmod(d, st.Mode().Perm()|0o711)
			}
		}
		if err := os.Chown(filepath.Join(dir, "mail"), id.mailUID, id.mailGID); err != nil {
			return nil, "", err
		}
	}
	var pw bytes.Buffer
	hashed := "{PLAIN}" + password
	if strings.EqualFold(scheme, "SHA512-CRYPT") {
		out, err := exec.Command(filepath.Join(filepath.Dir(bin), "doveadm"), "pw", "-s", "SHA512-CRYPT", "-p", password).Output()
		if err != nil {
			return nil, "", fmt.Errorf("doveadm pw: %w", err)
		}
		hashed = strings.TrimSpace(string(out))
		scheme = "SHA512-CRYPT"
	} else {
		scheme = "PLAIN"
	}
	for _, u := range users {
		fmt.Fprintf(&pw, "%s:%s\n", u, hashed)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), pw.Bytes(), 0o644); err != nil {
		return nil, "", err
	}
	imapPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	lmtpPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	conf := strings.NewReplacer(
		"{{dir}}", dir,
		"{{internal}}", id.internalUser,
		"{{login}}", id.loginUser,
		"{{uid}}", strconv.Itoa(id.mailUID),
		"{{gid}}", strconv.Itoa(id.mailGID),
		"{{scheme}}", scheme,
		"{{imapport}}", strconv.Itoa(imapPort),
		"{{lmtpport}}", strconv.Itoa(lmtpPort),
		"{{procs}}", strconv.Itoa(maxSessions+200),
		"{{clients}}", strconv.Itoa(2*maxSessions+1000),
	).Replace(dovecotConf)
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	s := &server{
		name:    "dovecot",
		imap:    fmt.Sprintf("127.0.0.1:%d", imapPort),
		lmtp:    fmt.Sprintf("127.0.0.1:%d", lmtpPort),
		done:    make(chan struct{}),
		logPath: filepath.Join(dir, "dovecot.log"),
	}
	out, err := os.Create(filepath.Join(dir, "dovecot.stderr"))
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "-F", "-c", confPath)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, "", err
	}
	s.cmd = cmd
	go func() {
		cmd.Wait()
		out.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{s.imap, s.lmtp} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if s.exited() || time.Now().After(deadline) {
				s.stop()
				b, _ := os.ReadFile(filepath.Join(dir, "dovecot.stderr"))
				return nil, "", fmt.Errorf("dovecot did not start (%v):\n%s\n%s", err, b, s.logTail())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return s, id.note, nil
}

// dovecotVersion is `dovecot --version`.
func dovecotVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

var errNoDovecot = errors.New("dovecot not installed")

// findDovecot returns the dovecot binary, or errNoDovecot.
func findDovecot(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
	}
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	return "", errNoDovecot
}
