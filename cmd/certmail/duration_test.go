package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDurationsWithDays: days (1d, 7d) are a duration wherever one is
// read (flags, the config file, the Certified-Delivery deadline), and
// JSON shows durations as strings, not nanoseconds.
func TestDurationsWithDays(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	certmail(t, "pw\n", "user", "add", "bob", "--password-stdin", "--data", dir).must(t, 0)
	r := certmail(t, "", "policy", "set", "alice", "--forward-unread-after", "7d", "--to", "bob", "--data", dir).must(t, 0)
	if !strings.Contains(r.stdout, "forward unread after 7d to bob") {
		t.Errorf("policy set: %s", r.stdout)
	}
	r = certmail(t, "", "policy", "show", "--json", "--data", dir).must(t, 0)
	var ps []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil || len(ps) != 1 || ps[0]["after"] != "7d" {
		t.Errorf("policy show --json: %s (%v)", r.stdout, err)
	}
	certmail(t, "Subject: s\r\nCertified-Delivery: deadline=3d\r\n\r\nbody\r\n", "deliver", "--to", "alice", "--data", dir).must(t, 0)
	certmail(t, "Subject: plain\r\n\r\nbody\r\n", "deliver", "--to", "bob", "--data", dir).must(t, 0)
	r = certmail(t, "", "unread", "--older-than", "0d", "--json", "--data", dir).must(t, 0)
	if !strings.Contains(r.stdout, `"oldest_age": "`) || strings.Contains(r.stdout, "_ns") {
		t.Errorf("unread --json: %s", r.stdout)
	}
	certmail(t, "", "unread", "--older-than", "1d", "--data", dir).must(t, 0)

	cfg := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(cfg, []byte("[certified]\ndeadline = \"7d\"\n"), 0o600)
	certmail(t, "", "config", "check", cfg).must(t, 0)
}
