package imapsrv_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"certmail/buildinfo"
)

// serverIDLine is the server's answer to ID in a test binary, which
// carries no VCS stamp.
func serverIDLine() string {
	bi := buildinfo.Read()
	return fmt.Sprintf(`* ID ("name" "certmail" "version" "%s" "revision" "%s")`, bi.Version, bi.ShortRevision())
}

// TestID: ID (RFC 2971) before and after login, advertised in both
// states; the client's name and version reach the log, and the session's
// later lines (its login) carry them.
func TestID(t *testing.T) {
	logs := &syncBuffer{}
	ts := newTestServer(t, withLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	ts.addUser("alice")
	rc := ts.raw()
	if !capsOf(t, rc.ok("CAPABILITY"))["ID"] {
		t.Errorf("ID not advertised before login")
	}
	// RFC 2971 section 3.1's first example, from the client's side.
	untagged := rc.ok(`ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")`)
	if len(untagged) != 1 || untagged[0] != serverIDLine() {
		t.Errorf("ID before login: %q, want %q", untagged, serverIDLine())
	}
	rc.ok(`LOGIN alice "secret pw"`)
	if !capsOf(t, rc.ok("CAPABILITY"))["ID"] {
		t.Errorf("ID not advertised after login")
	}
	// The second example: ID NIL; and a client may send ID again.
	untagged = rc.ok("ID NIL")
	if len(untagged) != 1 || untagged[0] != serverIDLine() {
		t.Errorf("ID NIL after login: %q", untagged)
	}
	log := logs.String()
	for _, want := range []string{
		`msg="imap client id" client=sodr client_version=19.34`,
		`msg=login client=sodr client_version=19.34 proto=imap user=alice remote=`,
		// After ID NIL the client is nobody in particular.
		`msg="imap client id" client="" client_version="" remote=`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestIDClient: go-imap's client reads the answer, the revision
// included.
func TestIDClient(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	c := ts.dial()
	data, err := c.ID(&imap.IDData{Name: "go-imap", Version: "2"}).Wait()
	if err != nil {
		t.Fatalf("ID: %v", err)
	}
	bi := buildinfo.Read()
	if data.Name != "certmail" || data.Version != bi.Version || data.Other["revision"] != bi.ShortRevision() {
		t.Errorf("ID answer %+v", data)
	}
}

// TestIDMalformed: what RFC 2971 section 4 does not allow is BAD, and
// the connection goes on (before login too, where an unknown command
// ends it).
func TestIDMalformed(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw()
	var many strings.Builder
	for i := range 31 {
		fmt.Fprintf(&many, ` "f%d" "v"`, i)
	}
	for _, line := range []string{
		"ID",
		"ID ()x",
		`ID ("name")`,
		`ID ("name" "a" "version")`,
		`ID (name "a")`,
		`ID "name" "a"`,
		`ID NILL`,
		`ID ("name" "a") extra`,
		`ID ("` + strings.Repeat("f", 31) + `" "v")`,
		`ID ("name" "` + strings.Repeat("v", 1025) + `")`,
		"ID (" + strings.TrimSpace(many.String()) + ")",
	} {
		rejects(t, rc, line)
	}
	// The limits themselves are accepted; an empty list too (RFC 2971's
	// grammar, #(...), allows none); field names are case-insensitive.
	rc.ok(`ID ("` + strings.Repeat("f", 30) + `" "` + strings.Repeat("v", 1024) + `")`)
	rc.ok("ID ()")
	rc.ok(`ID ("NAME" {3}` + "\r\nabc \"Version\" NIL)")
}
