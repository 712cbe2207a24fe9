package interop

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdUnit: systemd-analyze accepts contrib/certmail.service as
// shipped, with the binary where docs/operations.md installs it (in a
// private mount namespace, so the test installs nothing on the machine;
// the unit's ExecStart and the guide's install line must name the same
// path, or an operator following the guide gets "is not executable"),
// and rates its hardening at most 2.0 ("OK"); the unit runs the binary as
// the dedicated user with the packaged config.
func TestSystemdUnit(t *testing.T) {
	analyze := findProgram(t, "systemd-analyze")
	unshare := findProgram(t, "unshare")
	unitPath := filepath.Join("..", "contrib", "certmail.service")
	unit := string(mustRead(t, unitPath))
	for _, want := range []string{
		"ExecStart=/usr/local/bin/certmail serve --config /etc/certmail/certmail.toml",
		"User=certmail", "Type=notify", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ReadWritePaths=/var/lib/certmail", "PrivateTmp=yes", "ProtectHome=yes",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service",
		"CapabilityBoundingSet=\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	exec1 := regexp.MustCompile(`(?m)^ExecStart=(\S+) `).FindStringSubmatch(unit)
	guide := string(mustRead(t, filepath.Join("..", "docs", "operations.md")))
	inst := regexp.MustCompile(`(?m)^install -m 755 certmail (\S+)$`).FindStringSubmatch(guide)
	if exec1 == nil || inst == nil || exec1[1] != inst[1] {
		t.Fatalf("the unit runs %q, docs/operations.md installs the binary as %q", exec1, inst)
	}
	if !strings.Contains(unit, "#   install -m 755 certmail "+inst[1]+"\n") {
		t.Errorf("the unit's install comment does not name %s", inst[1])
	}
	abs, err := filepath.Abs(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	// The binary's directory gets an empty tmpfs in the namespace, then
	// the guide's own install command; the unit file is the shipped one.
	script := `set -e; mount -t tmpfs tmpfs "$(dirname "$2")"; install -m 755 "$1" "$2"; "$3" verify "$4"`
	out, err := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh",
		certmailBin, inst[1], analyze, abs).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify contrib/certmail.service, the binary installed as %s: %v\n%s", inst[1], err, out)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "certmail.service")
	os.WriteFile(f, []byte(unit), 0o644)
	out, err = exec.Command(analyze, "security", "--offline=yes", f).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for certmail.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Fatalf("exposure level %.1f, want at most 2.0:\n%s", level, out)
	}
	t.Logf("exposure level %s", m[1])
	sysusers := string(mustRead(t, filepath.Join("..", "contrib", "certmail.sysusers")))
	if !strings.Contains(sysusers, "u certmail - ") {
		t.Errorf("sysusers file: %s", sysusers)
	}
}

// TestSdNotify: under Type=notify, serve reports READY=1 once it listens
// and STOPPING=1 on SIGTERM, on the datagram socket systemd names.
func TestSdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(certmailBin, "serve", "--data", t.TempDir(), "--imap", freeAddr(t), "--lmtp", "", "--http", "")
	// As under systemd: journald stamps the lines, certmail leaves the
	// time out.
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "JOURNAL_STREAM=8:12345")
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	read := func() string {
		buf := make([]byte, 256)
		ln.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, _, err := ln.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	if got := read(); got != "READY=1" {
		t.Fatalf("first notification %q", got)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if got := read(); got != "STOPPING=1" {
		t.Fatalf("on SIGTERM: %q", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
	if !strings.HasPrefix(logs.String(), "level=INFO ") || !strings.Contains(logs.String(), "level=INFO msg=\"certmail started\"") || strings.Contains(logs.String(), "time=") {
		t.Fatalf("log lines for journald:\n%s", logs.String())
	}
}
