package interop

import (
	"net"
	"strings"
	"testing"
)

// TestMailIMAPClient runs a session with Debian's Mail::IMAPClient
// (libmail-imapclient-perl): ID before and after login, the server's
// name, version and revision in the answer, and the client's name and
// version in the server's log.
func TestMailIMAPClient(t *testing.T) {
	perl := requireTool(t, "perl")
	s := startServer(t)
	defer s.stop()
	s.addUser("alice", "secret")
	host, port, _ := net.SplitHostPort(s.imap)
	out := runTool(t, nil, perl, "testdata/mailimapclient_session.pl", host, port, "alice", "secret")
	if !strings.Contains(out, "PASS") {
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
