package interop

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestDocsShellBlocks runs every `sh` block of README.md and docs/*.md as
// printed, in order, so that the commands a new user copies cannot rot:
// in a fresh copy of the repository (as after git clone), with the
// binary the README builds, against the server the README starts. What
// is changed is declared below: the ports (free ones instead of 1143,
// 2424 and 8080), the system paths of docs/operations.md (moved into the
// scratch directory), `sudo -u certmail` (dropped), and placeholders
// (`cm-…`, the label the README's submission answered with; UID=3, the
// UID of its message once released). docs/verify.md's M.eml is the
// message the README submitted (copied there before its first block),
// until its section 9 fetches the released one over IMAP. A command that asks for a password (`user add`
// without --password-stdin, `curl --user NAME`) runs on a terminal
// (script(1)) and is typed "NAME password".
//
// A block that cannot run here says so in its fence (```sh no-test:
// reason); wantNoTest lists every such block, so that none is left out
// silently and a new one is a deliberate change to this test.
func TestDocsShellBlocks(t *testing.T) {
	for _, tool := range []string{"bash", "script", "swaks", "curl", "jq", "/usr/bin/python3"} {
		requireTool(t, tool)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	blocks := docBlocks(t, repo)

	var noTest []string
	for _, b := range blocks {
		if b.noTest != "" {
			noTest = append(noTest, b.key())
			t.Logf("not run: %s:%d (%s)", b.file, b.line, b.noTest)
		}
	}
	if !slices.Equal(noTest, wantNoTest) {
		t.Fatalf("blocks marked no-test:\n  %s\nwant (wantNoTest):\n  %s", strings.Join(noTest, "\n  "), strings.Join(wantNoTest, "\n  "))
	}

	ws := t.TempDir()
	copyRepo(t, repo, ws)
	r := &docRunner{t: t, ws: ws, imap: freeAddr(t), lmtp: freeAddr(t), http: freeAddr(t)}
	defer r.stopServer()
	// What docs/operations.md's Install block (no-test) would have put
	// in /etc/certmail: a configuration naming the data directory the
	// README's server uses.
	if err := os.MkdirAll(filepath.Join(ws, "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "etc", "certmail.toml"), fmt.Appendf(nil, "data = %q\n", filepath.Join(ws, "certmail-data")), 0o600); err != nil {
		t.Fatal(err)
	}

	ran := 0
	for _, b := range blocks {
		if b.noTest != "" {
			continue
		}
		if hook, ok := r.before()[b.key()]; ok {
			hook()
		}
		for _, cmd := range commands(b.text) {
			r.run(b, cmd)
			ran++
		}
	}
	t.Logf("ran %d commands of %d blocks", ran, len(blocks)-len(noTest))
	if r.label == "" {
		t.Error("no label was ever printed: the README's submission did not run")
	}
}

// wantNoTest are the blocks that say no-test, by file and first line.
var wantNoTest = []string{
	"README.md: go run ./cmd/certmail serve          # run certmail on its embedded default (data in ./certmail-data)",
	"README.md: make test-deps                          # installs Dovecot (dovecot-imapd, dovecot-lmtpd) among the rest",
	"docs/operations.md: go build -o certmail ./cmd/certmail",
	"docs/operations.md: install -m 644 contrib/certmail.service /etc/systemd/system/certmail.service",
	"docs/operations.md: # /etc/letsencrypt/renewal-hooks/deploy/certmail",
	"docs/operations.md: sudo -u certmail certmail user list --config /etc/certmail/certmail.toml |",
	"docs/operations.md: export PGPASSFILE=/etc/certmail/pgpass     # db1:5432:certmail:certmail:PASSWORD, mode 0600",
	"docs/operations.md: certmail user add alice --store 'postgres://certmail@db1:5432/certmail' --config /etc/certmail/certmail.toml",
	"docs/operations.md: head -c 32 /dev/urandom > /etc/certmail/store.key",
	"docs/scale-out.md: apt-get install postgresql",
	"docs/scale-out.md: sudo -u postgres psql -c \"ALTER SYSTEM SET listen_addresses = '*'\"",
	"docs/scale-out.md: ( umask 077; read -rsp 'database password: ' pw && printf '%s\\n' \"$pw\" > /etc/certmail/db.password )",
	"docs/scale-out.md: certmail config check /etc/certmail/certmail.toml",
	"docs/scale-out.md: scp -p /var/lib/certmail/gateway.key b:/var/lib/certmail/gateway.key",
	"docs/scale-out.md: sudo -u certmail certmail user add alice --config /etc/certmail/certmail.toml",
	"docs/verify.md: sudo apt-get install python3-jwcrypto",
	"docs/verify.md: /usr/bin/python3 interop/testdata/verify_jwcrypto.py bundle.json gateway.pem M.eml SALT_HEX",
}

// docBlock is one fenced block of a markdown file.
type docBlock struct {
	file   string // relative to the repository
	line   int    // of the opening fence
	text   string
	noTest string // the reason given after "no-test", if any
}

func (b docBlock) key() string {
	first, _, _ := strings.Cut(strings.TrimSpace(b.text), "\n")
	return b.file + ": " + first
}

// docBlocks returns the shell blocks of README.md and docs/*.md, in that
// order, fences indented inside lists included.
func docBlocks(t *testing.T, repo string) []docBlock {
	t.Helper()
	files := []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	if err != nil || len(more) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	slices.Sort(more)
	for _, f := range more {
		rel, _ := filepath.Rel(repo, f)
		files = append(files, filepath.ToSlash(rel))
	}
	var out []docBlock
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i := 0; i < len(lines); i++ {
			trimmed := strings.TrimLeft(lines[i], " ")
			info, ok := strings.CutPrefix(trimmed, "```")
			if !ok {
				continue
			}
			indent := len(lines[i]) - len(trimmed)
			start := i
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				body = append(body, strings.TrimPrefix(lines[i], strings.Repeat(" ", indent)))
			}
			lang, rest, _ := strings.Cut(strings.TrimSpace(info), " ")
			if lang != "sh" && lang != "bash" && lang != "shell" {
				continue
			}
			b := docBlock{file: f, line: start + 1, text: strings.Join(body, "\n")}
			if reason, ok := strings.CutPrefix(strings.TrimSpace(rest), "no-test"); ok {
				b.noTest = strings.TrimSpace(strings.TrimPrefix(reason, ":"))
				if b.noTest == "" {
					t.Errorf("%s:%d: no-test without a reason", f, start+1)
				}
			} else if rest != "" {
				t.Errorf("%s:%d: unknown fence info %q (only no-test: REASON)", f, start+1, rest)
			}
			out = append(out, b)
		}
	}
	return out
}

// commands splits a block into the commands a reader would paste one at
// a time: continuation lines (a trailing backslash or pipe) joined,
// comment lines and blank lines left out.
func commands(text string) []string {
	var out []string
	cur := ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur != "" {
			cur += "\n"
		}
		cur += line
		if strings.HasSuffix(trimmed, "\\") || strings.HasSuffix(trimmed, "|") {
			continue
		}
		out = append(out, cur)
		cur = ""
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

// copyRepo copies the repository's files (not .git, nor a data
// directory or binary left in it) to dst.
func copyRepo(t *testing.T, repo, dst string) {
	t.Helper()
	err := filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, path)
		switch {
		case rel == ".":
			return nil
		case d.IsDir() && (d.Name() == ".git" || rel == "certmail-data"):
			return filepath.SkipDir
		case rel == "certmail" || strings.HasSuffix(rel, ".test"):
			return nil
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copying the repository: %v", err)
	}
}

// docRunner runs the commands of the docs in the scratch copy ws.
type docRunner struct {
	t                *testing.T
	ws               string
	imap, lmtp, http string
	label            string // the first label a command printed
	releasedUID      imap.UID

	srv    *exec.Cmd
	logMu  sync.Mutex
	logs   bytes.Buffer
	exited chan struct{}
}

var docLabelRE = regexp.MustCompile(`cm-[a-z2-7]{26}`)

// substitute makes a printed command run here (see TestDocsShellBlocks).
func (r *docRunner) substitute(cmd string) string {
	_, lmtpPort, _ := net.SplitHostPort(r.lmtp)
	for _, s := range [][2]string{
		{"127.0.0.1:8080", r.http},
		{"127.0.0.1:1143", r.imap},
		{"--port 2424", "--port " + lmtpPort},
		{"https://mail.example.org", "http://" + r.http},
		{"imap://mail.example.org", "imap://" + r.imap},
		{"sudo -u certmail ", ""},
		{"/etc/certmail/certmail.toml", filepath.Join(r.ws, "etc", "certmail.toml")},
		{"/var/backups/certmail", filepath.Join(r.ws, "backups")},
		{"/var/lib/certmail-new", filepath.Join(r.ws, "restored")},
		{"/var/lib/certmail-moved", filepath.Join(r.ws, "moved")},
	} {
		cmd = strings.ReplaceAll(cmd, s[0], s[1])
	}
	if strings.Contains(cmd, "UID=3") {
		if r.releasedUID == 0 {
			r.t.Fatalf("%q needs the released message's UID, and nothing was released yet", cmd)
		}
		cmd = strings.ReplaceAll(cmd, "UID=3", fmt.Sprintf("UID=%d", r.releasedUID))
	}
	if strings.Contains(cmd, "cm-…") {
		if r.label == "" {
			r.t.Fatalf("%q needs a label, and no command printed one yet", cmd)
		}
		cmd = strings.ReplaceAll(cmd, "cm-…", r.label)
	}
	return cmd
}

var (
	userAddRE  = regexp.MustCompile(`certmail user add (\w+)`)
	curlUserRE = regexp.MustCompile(`curl .*--user (\w+) `)
)

// typed is what a person would type at the command's password prompts.
func typed(cmd string) (string, bool) {
	cmd, _, _ = strings.Cut(cmd, " #") // not what a comment says
	if m := userAddRE.FindStringSubmatch(cmd); m != nil && !strings.Contains(cmd, "--password-stdin") {
		return m[1] + " password\n" + m[1] + " password\n", true
	}
	if m := curlUserRE.FindStringSubmatch(cmd); m != nil {
		return m[1] + " password\n", true
	}
	return "", false
}

func (r *docRunner) run(b docBlock, printed string) {
	t := r.t
	t.Helper()
	cmd := r.substitute(printed)
	if c, _, _ := strings.Cut(cmd, "#"); strings.TrimSpace(c) == "./certmail serve" {
		r.startServer()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var c *exec.Cmd
	if input, ok := typed(cmd); ok {
		// On a terminal, as a person runs it.
		c = exec.CommandContext(ctx, "script", "-q", "-e", "-c", cmd, "/dev/null")
		c.Stdin = strings.NewReader(input)
	} else {
		c = exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", cmd)
	}
	c.Dir = r.ws
	c.Env = append(os.Environ(), "PATH="+r.ws+string(os.PathListSeparator)+os.Getenv("PATH"), "SHELL=/bin/bash")
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("%s:%d: %s\nran as: %s\n%v\nstdout:\n%s\nstderr:\n%s\nserver log:\n%s", b.file, b.line, printed, cmd, err,
			stdout.String(), stderr.String(), r.logText())
	}
	if r.label == "" {
		r.label = docLabelRE.FindString(stdout.String())
	}
}

// startServer runs the README's `./certmail serve` on the free ports.
func (r *docRunner) startServer() {
	t := r.t
	t.Helper()
	if r.srv != nil {
		t.Fatal("the docs start the server twice")
	}
	r.srv = exec.Command(filepath.Join(r.ws, "certmail"), "serve", "--imap", r.imap, "--lmtp", r.lmtp, "--http", r.http)
	r.srv.Dir = r.ws
	pr, pw := io.Pipe()
	r.srv.Stdout, r.srv.Stderr = pw, pw
	if err := r.srv.Start(); err != nil {
		t.Fatalf("./certmail serve: %v", err)
	}
	r.exited = make(chan struct{})
	go func() {
		r.srv.Wait()
		pw.Close()
		close(r.exited)
	}()
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := pr.Read(b)
			r.logMu.Lock()
			r.logs.Write(b[:n])
			r.logMu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	for _, addr := range []string{r.imap, r.lmtp, r.http} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-r.exited:
				t.Fatalf("./certmail serve exited:\n%s", r.logText())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("./certmail serve did not listen on %s:\n%s", addr, r.logText())
			}
		}
	}
}

func (r *docRunner) stopServer() {
	if r.srv == nil || r.srv.Process == nil {
		return
	}
	r.srv.Process.Signal(os.Interrupt)
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		r.srv.Process.Kill()
		<-r.exited
	}
	if r.t.Failed() {
		r.t.Logf("server log:\n%s", r.logText())
	}
}

func (r *docRunner) logText() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.logs.String()
}

// before are the steps the docs describe in words, done where a reader
// does them: by the block they precede.
func (r *docRunner) before() map[string]func() {
	return map[string]func(){
		// "alice ... acknowledges it by moving it into Acknowledge in
		// Thunderbird".
		"README.md: certmail evidence cm-… > bundle.json         # works with or without a running server": r.acknowledge,
		// The reader of docs/verify.md has the message as M.eml.
		"docs/verify.md: /usr/bin/python3 interop/testdata/verify_jwcrypto.py bundle.json gateway.pem M.eml": func() {
			data, err := os.ReadFile(filepath.Join(r.ws, "docs", "examples", "notice.eml"))
			if err == nil {
				err = os.WriteFile(filepath.Join(r.ws, "M.eml"), data, 0o600)
			}
			if err != nil {
				r.t.Fatal(err)
			}
		},
	}
}

// acknowledge moves the stub of r.label into alice's Acknowledge, as
// Thunderbird's move does, and waits for M in her INBOX.
func (r *docRunner) acknowledge() {
	t := r.t
	t.Helper()
	if r.label == "" {
		t.Fatal("nothing to acknowledge: no label yet")
	}
	c := imapLogin(t, r.imap, "alice", "alice password")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Certified-Label", Value: r.label}}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	uids := found.AllUIDs()
	if len(uids) != 1 {
		t.Fatalf("stubs of %s in alice's INBOX: %v", r.label, uids)
	}
	if _, err := c.Move(imap.UIDSetNum(uids[0]), "Acknowledge").Wait(); err != nil {
		t.Fatalf("moving the stub into Acknowledge: %v", err)
	}
	// The released message is the newest in INBOX.
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	all, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	got := all.AllUIDs()
	if len(got) == 0 || got[len(got)-1] <= uids[0] {
		t.Fatalf("nothing released into alice's INBOX after the move: %v", got)
	}
	r.releasedUID = got[len(got)-1]
	c.Logout().Wait()
}
