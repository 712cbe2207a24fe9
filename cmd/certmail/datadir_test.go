package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runIn runs the binary in the working directory wd with extra
// environment variables.
func runIn(t *testing.T, wd string, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = wd
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running certmail %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// TestDataDirOnlyCreatedBySetup: the default data directory is relative,
// so a command run from another directory used to make a second store
// with its own gateway key. Only serve and user add may create a store,
// and they say where; every other command refuses a directory without a
// store, naming the path it looked at. The directory comes from --data,
// else $CERTMAIL_DATA, else the config file's data.
func TestDataDirOnlyCreatedBySetup(t *testing.T) {
	t.Setenv("CERTMAIL_DATA", "") // the test's own environment must not leak in
	wd := t.TempDir()
	def := filepath.Join(wd, "certmail-data")
	for _, args := range [][]string{{"user", "list"}, {"token", "add", "acme"}, {"token", "list"}, {"policy", "show"}, {"unread"}} {
		r := runIn(t, wd, nil, "", args...).must(t, exitFailure)
		if !strings.Contains(r.stderr, "no certmail store in "+def) {
			t.Errorf("%v: %s", args, r.stderr)
		}
	}
	runIn(t, wd, nil, "Subject: s\r\n\r\nb\r\n", "deliver", "--to", "alice").must(t, exitTempFail)
	if _, err := os.Stat(def); err == nil {
		t.Fatalf("a command other than serve or user add created %s", def)
	}
	r := runIn(t, wd, nil, "pw\n", "user", "add", "alice", "--password-stdin").must(t, 0)
	if !strings.Contains(r.stderr, "creating a new store in "+def) {
		t.Errorf("user add does not say where: %q", r.stderr)
	}
	if r := runIn(t, wd, nil, "", "user", "list").must(t, 0); r.stdout != "alice\n" || r.stderr != "" {
		t.Errorf("user list: %q %q", r.stdout, r.stderr)
	}

	// An existing but empty directory (systemd's StateDirectory) is no
	// store either.
	empty := t.TempDir()
	if r := runIn(t, wd, nil, "", "token", "add", "acme", "--data", empty).must(t, exitFailure); !strings.Contains(r.stderr, "no certmail store in "+empty) {
		t.Errorf("empty directory: %s", r.stderr)
	}

	// $CERTMAIL_DATA, below --data; the config file's data below both.
	store := filepath.Join(t.TempDir(), "store")
	env := []string{"CERTMAIL_DATA=" + store}
	if r := runIn(t, wd, env, "", "user", "list").must(t, exitFailure); !strings.Contains(r.stderr, "no certmail store in "+store) {
		t.Errorf("CERTMAIL_DATA: %s", r.stderr)
	}
	runIn(t, wd, env, "pw\n", "user", "add", "bob", "--password-stdin").must(t, 0)
	if r := runIn(t, wd, env, "", "user", "list").must(t, 0); r.stdout != "bob\n" {
		t.Errorf("CERTMAIL_DATA: %q", r.stdout)
	}
	if r := runIn(t, wd, env, "", "user", "list", "--data", def).must(t, 0); r.stdout != "alice\n" {
		t.Errorf("--data over CERTMAIL_DATA: %q", r.stdout)
	}
	cfg := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(cfg, []byte("data = \""+def+"\"\n"), 0o600)
	if r := runIn(t, t.TempDir(), nil, "", "user", "list", "--config", cfg).must(t, 0); r.stdout != "alice\n" {
		t.Errorf("the config's data: %q", r.stdout)
	}
	if r := runIn(t, t.TempDir(), env, "", "user", "list", "--config", cfg).must(t, 0); r.stdout != "bob\n" {
		t.Errorf("CERTMAIL_DATA over the config's data: %q", r.stdout)
	}
}
