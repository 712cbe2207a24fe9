package interop

import (
	"net"
	"strings"
	"testing"
)

// TestMailIMAPClientSortThread: Debian's Mail::IMAPClient
// (libmail-imapclient-perl) sorts and threads through its own sort() and
// thread() (RFC 5256): UID SORT by base subject, REVERSE, and both
// threading algorithms, its THREAD parser reading certmail's answer.
func TestMailIMAPClientSortThread(t *testing.T) {
	perl := requireTool(t, "perl")
	s := startServer(t)
	defer s.stop()
	s.addUser("alice", "secret")
	s.deliverSwaks("alice@example.org", "bravo", "one")
	s.deliverSwaks("alice@example.org", "alpha", "two")
	s.deliverSwaks("alice@example.org", "Re: alpha", "three")
	host, port, _ := net.SplitHostPort(s.imap)
	out := runTool(t, nil, perl, "testdata/mailimapclient_session.pl", host, port, "alice", "secret", "sort")
	t.Logf("Mail::IMAPClient:\n%s", out)
	for _, want := range []string{
		"sort subject: 2 3 1\n",
		"sort reverse subject: 1 2 3\n",
		"thread orderedsubject: (1)(2 3)\n",
		// swaks sets no In-Reply-To: "Re: alpha" joins "alpha" by subject
		"thread references: (1)(2 3)\n",
		"PASS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Mail::IMAPClient session lacks %q:\n%s", want, out)
		}
	}
}
