package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestVersion: `certmail version` and the first line serve logs name the
// module version and the VCS revision that the toolchain stamped into the
// binary (as `go version -m` reads them; "rev unknown" when the build has
// no VCS stamp, e.g. -buildvcs=false or a git worktree).
func TestVersion(t *testing.T) {
	goCmd := "go"
	if _, err := exec.LookPath(goCmd); err != nil {
		goCmd = "/usr/local/go/bin/go"
	}
	out, err := exec.Command(goCmd, "version", "-m", binary).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	mod := regexp.MustCompile(`(?m)^\s+mod\s+certmail\s+(\S+)`).FindSubmatch(out)
	if mod == nil {
		t.Fatalf("go version -m names no module:\n%s", out)
	}
	rev := "unknown"
	if m := regexp.MustCompile(`(?m)^\s+build\s+vcs\.revision=(\S+)`).FindSubmatch(out); m != nil {
		rev = string(m[1][:12])
	}
	r := certmail(t, "", "version").must(t, 0)
	if !strings.HasPrefix(r.stdout, "certmail "+string(mod[1])+" (rev "+rev) {
		t.Errorf("version printed %q, want the module version %s and revision %s", r.stdout, mod[1], rev)
	}
	srv := startServer(t, t.TempDir())
	first, _, _ := strings.Cut(srv.logs(), "\n")
	if !strings.Contains(first, "version="+string(mod[1])) || !strings.Contains(first, "revision="+rev) {
		t.Errorf("serve's first log line does not name the build: %q", first)
	}
	srv.stop(t)
}
