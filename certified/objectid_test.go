package certified_test

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"certmail/certified"
	"certmail/imapsrv"
)

// rawIMAP is a line-level IMAP client, for the items go-imap's client
// does not parse (RFC 8474 EMAILID, RFC 8514 SAVEDATE).
type rawIMAP struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	n    int
}

func (e *env) rawLogin(user string) *rawIMAP {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	rc := &rawIMAP{t: e.t, conn: conn, br: bufio.NewReader(conn)}
	rc.line() // greeting
	rc.ok(fmt.Sprintf(`LOGIN %s "%s-pw"`, user, user))
	return rc
}

func (rc *rawIMAP) line() string {
	rc.t.Helper()
	rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := rc.br.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("reading: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

// ok runs a command that must succeed; its untagged lines (literals are
// not expected) come back.
func (rc *rawIMAP) ok(cmd string) []string {
	rc.t.Helper()
	rc.n++
	tag := fmt.Sprintf("r%d", rc.n)
	if _, err := fmt.Fprintf(rc.conn, "%s %s\r\n", tag, cmd); err != nil {
		rc.t.Fatal(err)
	}
	var untagged []string
	for {
		l := rc.line()
		if st, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(st, "OK") {
				rc.t.Fatalf("%s: %s", cmd, st)
			}
			return untagged
		}
		untagged = append(untagged, l)
	}
}

var emailIDRE = regexp.MustCompile(`EMAILID \(([A-Za-z0-9_-]+)\)`)

func emailIDs(t *testing.T, lines []string) []string {
	t.Helper()
	var ids []string
	for _, l := range lines {
		if m := emailIDRE.FindStringSubmatch(l); m != nil {
			ids = append(ids, m[1])
		}
	}
	return ids
}

// TestStubObjectIDsRevealNothingOfM extends the stub-leak tests to RFC
// 8474 and RFC 8514: the stub's EMAILID is not the one M gets when it
// is released, SEARCH EMAILID with M's finds nothing while M is held,
// THREADID says nothing, and once released M is a message of its own
// whose EMAILID differs from the stub's.
func TestStubObjectIDsRevealNothingOfM(t *testing.T) {
	e := newEnv(t)
	it := e.post(certified.Spec{Reveal: certified.RevealNone})
	mID := imapsrv.EmailObjectID(it.Blob)
	rc := e.rawLogin("alice")
	rc.ok("SELECT INBOX")
	lines := rc.ok("FETCH 1 (EMAILID THREADID SAVEDATE)")
	ids := emailIDs(t, lines)
	if len(ids) != 1 {
		t.Fatalf("FETCH EMAILID of the stub: %q", lines)
	}
	stubID := ids[0]
	if stubID == mID || stubID != imapsrv.EmailObjectID(it.StubBlob) {
		t.Fatalf("the stub's EMAILID %s (M's would be %s, the stub blob's %s)", stubID, mID, imapsrv.EmailObjectID(it.StubBlob))
	}
	if !strings.Contains(lines[0], "THREADID NIL") {
		t.Errorf("the stub's THREADID: %q", lines[0])
	}
	for _, search := range []string{"EMAILID " + mID, "OR EMAILID " + mID + " THREADID T1"} {
		if l := rc.ok("SEARCH " + search); len(l) != 1 || l[0] != "* SEARCH" {
			t.Fatalf("SEARCH %s while M is held: %q", search, l)
		}
	}
	if l := rc.ok("SEARCH EMAILID " + stubID); len(l) != 1 || l[0] != "* SEARCH 1" {
		t.Fatalf("SEARCH EMAILID of the stub: %q", l)
	}

	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait(); err != nil {
		t.Fatalf("MOVE to Acknowledge: %v", err)
	}
	rc.ok("NOOP")
	released := emailIDs(t, rc.ok("FETCH 1:* (EMAILID)"))
	if len(released) != 1 || released[0] == stubID {
		t.Fatalf("INBOX after the release: EMAILIDs %q, the stub's was %s", released, stubID)
	}
	if l := rc.ok("SEARCH EMAILID " + stubID); len(l) != 1 || l[0] != "* SEARCH" {
		t.Errorf("SEARCH EMAILID of the stub finds the released M: %q", l)
	}
}
