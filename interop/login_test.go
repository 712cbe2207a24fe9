package interop

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"certmail/autoconfig"
)

// TestLoginByAddress: users type their address, in any case, for any
// served domain: IMAP LOGIN, AUTHENTICATE PLAIN (with and without the
// address as authorization identity) and HTTP Basic on the COD endpoint
// all take it. An address in another domain is refused even with the
// local account's password, and spends none of its budget; the address
// and the bare name share one lockout budget.
func TestLoginByAddress(t *testing.T) {
	cfg := writeConfig(t, `
hostname = "mail.example.org"
domains = ["example.org", "Example.NET"]
[certified]
alternate_domains = ["partner.example"]
[limits]
loopback_exempt = true
login_free_failures = 2
login_max_failures = 3
login_delay = "10ms"
login_lockout = "1m"
`)
	s := startServer(t, "--config", cfg)
	s.addUser("alice", "alice-pw")

	conn, br := rawIMAP(t, s.imap)
	cmd := func(tag, line string) string {
		t.Helper()
		conn.Write([]byte(tag + " " + line + "\r\n"))
		for {
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: read: %v", line, err)
			}
			if strings.HasPrefix(l, tag+" ") {
				return strings.TrimRight(l, "\r\n")
			}
		}
	}
	plain := func(authzid, authcid, pw string) string {
		return "AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte(authzid+"\x00"+authcid+"\x00"+pw))
	}
	relogin := func() {
		t.Helper()
		conn.Close()
		conn, br = rawIMAP(t, s.imap)
	}

	// Accepted, each on a fresh connection.
	for i, line := range []string{
		`LOGIN alice@example.org alice-pw`,
		`LOGIN "ALICE@EXAMPLE.ORG" alice-pw`,
		`LOGIN alice@example.net. alice-pw`,
		plain("", "alice@Example.Net", "alice-pw"),
		plain("alice@example.org", "Alice@example.org", "alice-pw"),
		plain("alice", "alice@example.org", "alice-pw"),
	} {
		relogin()
		tag := fmt.Sprintf("ok%d", i)
		if l := cmd(tag, line); !strings.HasPrefix(l, tag+" OK") {
			t.Fatalf("%s: %s", line, l)
		}
		// Logged in as alice: her INBOX.
		if l := cmd(tag+"s", "SELECT INBOX"); !strings.HasPrefix(l, tag+"s OK") {
			t.Fatalf("%s then SELECT: %s", line, l)
		}
	}
	// Refused with the right password: not a served domain (an alternate
	// domain is somebody else's alice), and more often than the lockout
	// allows, which must not lock the local alice.
	relogin()
	for i, line := range []string{
		`LOGIN alice@partner.example alice-pw`,
		`LOGIN alice@evil.test alice-pw`,
		plain("", "alice@mail.example.org", "alice-pw"),
		`LOGIN alice@evil.test alice-pw`,
	} {
		tag := fmt.Sprintf("no%d", i)
		if l := cmd(tag, line); !strings.HasPrefix(l, tag+" NO [AUTHENTICATIONFAILED]") {
			t.Fatalf("%s: %s", line, l)
		}
	}
	if l := cmd("b1", "LOGIN alice alice-pw"); !strings.HasPrefix(l, "b1 OK") {
		t.Fatalf("alice after failures of other domains' alice: %s", l)
	}

	// HTTP Basic on the COD endpoint: the address passes authentication
	// (then there is no such item: 404); another domain's alice is 401.
	label := "CM-NOSUCHITEM"
	if code, body := s.postCOD(t, "Alice@Example.org", "alice-pw", label, "x"); code == http.StatusUnauthorized {
		t.Fatalf("HTTP Basic with the address: %d %s", code, body)
	}
	if code, body := s.postCOD(t, "alice@evil.test", "alice-pw", label, "x"); code != http.StatusUnauthorized {
		t.Fatalf("HTTP Basic with another domain's address: %d %s", code, body)
	}

	// One budget: two wrong passwords by address, one by name (over
	// HTTP), and the account is locked for every spelling.
	relogin()
	cmd("f1", "LOGIN alice@EXAMPLE.org wrong1")
	cmd("f2", plain("", "alice@example.net", "wrong2"))
	if code, _ := s.postCOD(t, "alice", "wrong3", label, "x"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password over HTTP: %d", code)
	}
	for i, line := range []string{`LOGIN alice alice-pw`, `LOGIN alice@example.org alice-pw`} {
		tag := fmt.Sprintf("l%d", i)
		if l := cmd(tag, line); !strings.HasPrefix(l, tag+" NO [AUTHENTICATIONFAILED] too many failed logins") {
			t.Fatalf("%s while locked: %s", line, l)
		}
	}
}

// TestLoginByAddressNoDomains: with no domains configured, delivery takes
// any domain (the MTA in front routed it here), and so does login, as the
// README's quick start has it; an alternate domain is still somebody
// else's.
func TestLoginByAddressNoDomains(t *testing.T) {
	cfg := writeConfig(t, `
[certified]
alternate_domains = ["partner.example"]
`)
	s := startServer(t, "--config", cfg)
	s.addUser("alice", "alice-pw")
	for _, name := range []string{"alice@example.org", "ALICE@mail.example.net"} {
		c := imapLogin(t, s.imap, name, "alice-pw")
		c.Logout().Wait()
	}
	conn, br := rawIMAP(t, s.imap)
	conn.Write([]byte("a1 LOGIN alice@partner.example alice-pw\r\n"))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, _ := br.ReadString('\n'); !strings.HasPrefix(l, "a1 NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("alternate domain's alice: %q", l)
	}
}

// TestAutoconfigDefaults: with no [autoconfig] settings the document is
// one Thunderbird accepts (its reader refuses one without an outgoing
// server), names the host the client asked rather than the machine's
// name, and gives the address as the user name, with which the IMAP
// login then works.
func TestAutoconfigDefaults(t *testing.T) {
	cfg := writeConfig(t, `
hostname = "gw.internal.example"
domains = ["example.org"]
`)
	s := startServer(t, "--config", cfg)
	s.addUser("alice", "alice-pw")
	resp, err := http.Get("http://" + s.http + "/mail/config-v1.1.xml?emailaddress=alice%40example.org")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := autoconfig.Validate(body); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	var doc autoconfig.ClientConfig
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(s.imap)
	in, out := doc.Provider.Incoming, doc.Provider.Outgoing
	if len(in) != 1 || in[0] != (autoconfig.XMLServer{Type: "imap", Hostname: "127.0.0.1", Port: atoi(t, port),
		SocketType: "plain", Authentication: "password-cleartext", Username: "%EMAILADDRESS%"}) {
		t.Fatalf("incoming %+v\n%s", in, body)
	}
	if len(out) != 1 || out[0] != (autoconfig.XMLServer{Type: "smtp", Hostname: "127.0.0.1", Port: 587,
		SocketType: "STARTTLS", Authentication: "password-cleartext", Username: "%EMAILADDRESS%"}) {
		t.Fatalf("outgoing %+v\n%s", out, body)
	}
	// The user name as Thunderbird fills it in logs in.
	c := imapLogin(t, net.JoinHostPort(in[0].Hostname, port), strings.ReplaceAll(in[0].Username, "%EMAILADDRESS%", "alice@example.org"), "alice-pw")
	c.Logout().Wait()
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
