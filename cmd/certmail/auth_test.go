package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// imapCmd sends one command on a fresh IMAP connection to addr and
// returns the tagged answer.
func imapCmd(t *testing.T, addr, line string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	fmt.Fprintf(conn, "a1 %s\r\n", line)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if st, ok := strings.CutPrefix(l, "a1 "); ok {
			return strings.TrimSpace(st)
		}
	}
}

// TestLockoutSharedAcrossProtocols runs the real server: password
// guesses over HTTP Basic auth (the COD endpoint) lock the account for
// IMAP, and guesses over IMAP lock it for HTTP, spelling variants of the
// name included. Loopback is exempt per address (the default), so what
// locks is the account: the other account logs in from the same address.
func TestLockoutSharedAcrossProtocols(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "certmail.toml")
	if err := os.WriteFile(cfg, []byte("[limits]\nlogin_free_failures = 0\nlogin_max_failures = 3\nlogin_delay = \"0s\"\nlogin_lockout = \"1m\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, "--config", cfg, "--imap", "127.0.0.1:0")
	for _, u := range []string{"alice", "bob", "carol"} {
		certmail(t, u+"-pw\n", "user", "add", u, "--password-stdin", "--data", dir).must(t, 0)
	}
	codURL := base(srv) + "/v1/items/cm-aaaaaaaaaaaaaaaaaaaaaaaaaa/cod"
	basic := func(user, pass string) int {
		t.Helper()
		status, _ := apiCall(t, "POST", codURL, "", []byte("x"), user, pass)
		return status
	}
	login := func(user, pass string) string {
		t.Helper()
		return imapCmd(t, srv.imap, fmt.Sprintf("LOGIN %q %q", user, pass))
	}
	// Right passwords: 404 (authenticated; no such item) and OK.
	if st := basic("alice", "alice-pw"); st != http.StatusNotFound {
		t.Fatalf("alice over HTTP: %d", st)
	}
	if st := login("alice", "alice-pw"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("alice over IMAP: %s", st)
	}

	// HTTP guesses lock IMAP.
	for _, name := range []string{"alice", " alice", "ALICE"} {
		if st := basic(name, "guess"); st != http.StatusUnauthorized {
			t.Fatalf("guess: %d", st)
		}
	}
	if st := login("alice", "alice-pw"); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED] too many failed logins") {
		t.Fatalf("alice over IMAP after HTTP guesses: %s", st)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alice-pw"))
	if st := imapCmd(t, srv.imap, "AUTHENTICATE PLAIN "+plain); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("AUTHENTICATE as alice after HTTP guesses: %s", st)
	}
	if st := basic("alice", "alice-pw"); st != http.StatusUnauthorized {
		t.Fatalf("alice over HTTP while locked: %d (a right guess must not show)", st)
	}

	// IMAP guesses lock HTTP.
	for _, name := range []string{"bob", "bob ", "Bob"} {
		if st := login(name, "guess"); !strings.HasPrefix(st, "NO") {
			t.Fatalf("guess: %s", st)
		}
	}
	if st := basic("bob", "bob-pw"); st != http.StatusUnauthorized {
		t.Fatalf("bob over HTTP after IMAP guesses: %d", st)
	}
	// The admin socket's password change checks the old password
	// through the same guard.
	if r := certmail(t, "bob-pw\nnew-pw\n", "user", "passwd", "bob", "--keep-key", "--password-stdin", "--data", dir); r.code == 0 ||
		!strings.Contains(r.stderr, "too many failed logins") {
		t.Fatalf("password change of a locked account, with the right old password: %+v", r)
	}

	// Another account is untouched, from the same (exempt) address.
	if st := login("carol", "carol-pw"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("carol: %s", st)
	}
	if st := basic("carol", "carol-pw"); st != http.StatusNotFound {
		t.Fatalf("carol over HTTP: %d", st)
	}
	logs := srv.logs()
	for _, want := range []string{"proto=http", "proto=imap", "proto=admin", "login locked out"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}
