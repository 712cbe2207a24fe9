package interop

import (
	"net"
	"strings"
	"testing"
)

// TestMailIMAPClient runs a session with Debian's Mail::IMAPClient
// (libmail-imapclient-perl): ID before and after login, the server's
// name, version and revision in the answer, and the client's name and
// version in the server's log; then COMPRESS=DEFLATE (RFC 4978) with the
// client's own zlib compression, which flushes each command with
// Z_PARTIAL_FLUSH (a reader that returns data only at a sync flush never
// sees the command), and SELECT, FETCH, APPEND and SEARCH through it;
// then GETQUOTAROOT (RFC 9208) with the limits `certmail user quota` set.
func TestMailIMAPClient(t *testing.T) {
	perl := requireTool(t, "perl")
	s := startServer(t)
	defer s.stop()
	s.addUser("alice", "secret")
	s.deliverSwaks("alice@example.org", "first", strings.Repeat("a body line that compresses well\n", 100))
	s.deliverSwaks("alice@example.org", "second", "short")
	s.run("", "user", "quota", "alice", "--storage", "1MiB", "--messages", "1000", "--data", s.data)
	host, port, _ := net.SplitHostPort(s.imap)
	out := runTool(t, nil, perl, "testdata/mailimapclient_session.pl", host, port, "alice", "secret", "compress", "quota")
	t.Logf("Mail::IMAPClient:\n%s", out)
	if !strings.Contains(out, "PASS") || !strings.Contains(out, "compressed APPEND, SEARCH and FETCH: ok") ||
		!strings.Contains(out, `quota: * QUOTA "" (STORAGE`) {
		t.Fatalf("Mail::IMAPClient session:\n%s", out)
	}
	for _, want := range []string{
		`client=mailimapclient-interop client_version=1.0 remote=`,
		`client=mailimapclient-interop client_version=1.1 remote=`,
	} {
		if !logHas(s.logText(), `msg="imap client id"`, want) {
			t.Errorf("server log lacks an ID line with %q:\n%s", want, s.logText())
		}
	}
}

// logHas reports whether one line of log contains every one of parts.
func logHas(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
