package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBackupRestoreSummary: backup and restore, run away from a terminal
// (as from cron or a pipe), draw no bar (no \r, no escape codes) and end
// with one line in human units: size, time, rate, the store's records and size.
func TestBackupRestoreSummary(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	for i := range 3 {
		certmail(t, fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", 100<<10)), "deliver", "--to", "alice", "--data", dir).must(t, 0)
	}
	bak := filepath.Join(t.TempDir(), "b.bak")
	r := certmail(t, "", "backup", "--out", bak, "--data", dir).must(t, 0)
	units := `\d+(\.\d)? (B|KiB|MiB)`
	if !regexp.MustCompile(`^wrote ` + regexp.QuoteMeta(bak) + ` \(` + units + `\) in [0-9.]+m?s, ` + units + `/s: store of \d+ records \(` + units + `\), files \n?`).MatchString(r.stdout) {
		t.Errorf("backup summary: %q", r.stdout)
	}
	restored := filepath.Join(t.TempDir(), "r")
	r2 := certmail(t, "", "restore", bak, "--data", restored).must(t, 0)
	if !regexp.MustCompile(`^restored ` + regexp.QuoteMeta(bak) + ` \(` + units + `\) into ` + regexp.QuoteMeta(restored) + ` in [0-9.]+m?s, ` + units + `/s: store of \d+ records \(` + units + `\)`).MatchString(r2.stdout) {
		t.Errorf("restore summary: %q", r2.stdout)
	}
	for _, out := range []string{r.stdout, r.stderr, r2.stdout, r2.stderr} {
		if strings.ContainsAny(out, "\r\x1b") {
			t.Errorf("terminal codes away from a terminal: %q", out)
		}
	}
	if r := certmail(t, "", "user", "list", "--data", restored).must(t, 0); r.stdout != "alice\n" {
		t.Errorf("restored accounts: %q", r.stdout)
	}
}
