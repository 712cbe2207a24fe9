package imapsrv_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"certmail/imapsrv"
	"certmail/mailbox"
)

func withMetadata(m imapsrv.MetadataOptions) serverOption {
	return func(o *imapsrv.Options) { o.Metadata = m }
}

// setLiteral runs SETMETADATA mbox (entry {n}) with a synchronizing
// literal, waiting for the continuation as a client must.
func setLiteral(t *testing.T, rc *rawClient, mbox, entry, value string) string {
	t.Helper()
	tag := rc.nextTag()
	rc.write(fmt.Sprintf("%s SETMETADATA %s (%s {%d}\r\n", tag, mbox, entry, len(value)))
	if l := rc.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("SETMETADATA literal: got %q, want a continuation", l)
	}
	rc.write(value + ")\r\n")
	_, st := rc.readUntilTagged(tag)
	return st
}

// TestMetadataRFC5464Examples replays RFC 5464's examples (sections 4.2,
// 4.2.1, 4.2.2, 4.3): server and mailbox entries, a value with line
// breaks sent as a literal, several entries in one command, MAXSIZE with
// LONGENTRIES (options before and after the mailbox, as the RFC writes
// both), DEPTH 0, 1 and infinity, NIL removing an entry.
func TestMetadataRFC5464Examples(t *testing.T) {
	ts := newTestServer(t, withMetadata(imapsrv.MetadataOptions{Comment: "Shared comment", Admin: "mailto:admin@example.org"}))
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	caps := capsOf(t, rc.ok("CAPABILITY"))
	if !caps["METADATA"] || !caps["METADATA-SERVER"] {
		t.Fatalf("METADATA not advertised: %v", keys(caps))
	}

	mustContain(t, rc.ok(`GETMETADATA "" /shared/comment`), `* METADATA "" ("/shared/comment" "Shared comment")`)

	if st := setLiteral(t, rc, "INBOX", "/private/comment", "My new comment across\r\ntwo lines."); !strings.HasPrefix(st, "OK") {
		t.Fatalf("SETMETADATA with a literal: %q", st)
	}
	mustContain(t, rc.ok("GETMETADATA INBOX /private/comment"),
		"* METADATA INBOX (\"/private/comment\" {33}\r\nMy new comment across\r\ntwo lines.)")

	rc.ok(`SETMETADATA INBOX (/private/comment "My own comment" /shared/comment "Shared comment")`)
	mustContain(t, rc.ok("GETMETADATA INBOX (/shared/comment /private/comment)"),
		`* METADATA INBOX (`, `"/shared/comment" "Shared comment"`, `"/private/comment" "My own comment"`)

	// 4.2.1: MAXSIZE leaves out the longer value and reports its size.
	long := strings.Repeat("x", 2199)
	rc.ok(fmt.Sprintf("SETMETADATA INBOX (/shared/comment {%d+}\r\n%s)", len(long), long))
	for _, cmd := range []string{
		`GETMETADATA "INBOX" (MAXSIZE 1024) ("/shared/comment" "/private/comment")`,
		`GETMETADATA (MAXSIZE 1024) "INBOX" ("/shared/comment" "/private/comment")`,
	} {
		untagged, st := rc.cmd(cmd)
		if !strings.HasPrefix(st, "OK [METADATA LONGENTRIES 2199]") {
			t.Fatalf("%s: %q", cmd, st)
		}
		if len(untagged) != 1 || untagged[0] != `* METADATA INBOX ("/private/comment" "My own comment")` {
			t.Fatalf("%s: %q", cmd, untagged)
		}
	}

	// 4.2.2: DEPTH.
	rc.ok(`SETMETADATA INBOX (/private/filters/values/small "SMALLER 5000" /private/filters/values/boss "FROM \"boss@example.com\"" /private/filters/values/boss/deeper "x")`)
	one := rc.ok(`GETMETADATA "INBOX" (DEPTH 1) ("/private/filters/values")`)
	mustContain(t, one, `"/private/filters/values/small" "SMALLER 5000"`, `"/private/filters/values/boss" "FROM \"boss@example.com\""`)
	mustNotContain(t, one, "deeper")
	mustNotContain(t, one, `"/private/filters/values" NIL`)
	mustContain(t, rc.ok(`GETMETADATA (DEPTH infinity) INBOX /private/filters`), `"/private/filters/values/boss/deeper" "x"`, `"/private/filters/values/small"`)
	mustContain(t, rc.ok(`GETMETADATA (DEPTH 0) INBOX /private/filters/values`), `* METADATA INBOX ("/private/filters/values" NIL)`)
	// Entry names are case-insensitive (section 3.2).
	mustContain(t, rc.ok(`GETMETADATA INBOX /PRIVATE/Filters/Values/SMALL`), `"SMALLER 5000"`)

	// 4.3: NIL removes.
	rc.ok("SETMETADATA INBOX (/private/comment NIL)")
	mustContain(t, rc.ok("GETMETADATA INBOX /private/comment"), `* METADATA INBOX ("/private/comment" NIL)`)
	// An empty value is a value.
	rc.ok(`SETMETADATA INBOX (/private/comment "")`)
	mustContain(t, rc.ok("GETMETADATA INBOX /private/comment"), `* METADATA INBOX ("/private/comment" "")`)

	rc.fail("NO [NONEXISTENT]", "GETMETADATA nosuch /private/comment")
	rc.fail("NO [NONEXISTENT]", `SETMETADATA nosuch (/private/comment "x")`)
}

// TestMetadataBadNames: entry names that break RFC 5464 section 3.2, and
// malformed options, get BAD; the session goes on.
func TestMetadataBadNames(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	for _, bad := range []string{
		"GETMETADATA INBOX /foo/bar",
		"GETMETADATA INBOX private/comment",
		`GETMETADATA INBOX "/private/a*"`,
		`GETMETADATA INBOX "/private/a%"`,
		"GETMETADATA INBOX /private//a",
		"GETMETADATA INBOX /private/a/",
		"GETMETADATA INBOX \"/private/\x01\"",
		"GETMETADATA INBOX \"/private/\u00e9\"",
		"GETMETADATA INBOX ()",
		"GETMETADATA INBOX",
		"GETMETADATA (DEPTH 2) INBOX /private",
		"GETMETADATA (MAXSIZE -1) INBOX /private",
		"GETMETADATA (MAXSIZE 1 MAXSIZE 2) INBOX /private",
		"GETMETADATA (FOO 1) INBOX /private",
		"GETMETADATA (DEPTH) INBOX /private",
		`SETMETADATA INBOX (/private "x")`,
		`SETMETADATA INBOX (/shared "x")`,
		`SETMETADATA INBOX (/other/x "x")`,
		`SETMETADATA INBOX (/private/x)`,
		`SETMETADATA INBOX (/private/x FOO)`,
		`SETMETADATA INBOX /private/x "y"`,
	} {
		rejects(t, rc, bad)
	}
	// /private and /shared themselves may be read, with a depth.
	rc.ok("GETMETADATA (DEPTH infinity) INBOX (/private /shared)")
}

// TestMetadataServerEntries: the configured /shared/admin and
// /shared/comment are read-only server entries; /private server entries
// (Delta Chat's /private/devicetoken) are the account's own.
func TestMetadataServerEntries(t *testing.T) {
	ts := newTestServer(t, withMetadata(imapsrv.MetadataOptions{Admin: "mailto:postmaster@example.org", Comment: "certmail test"}))
	ts.addUser("alice")
	ts.addUser("bob")
	rc := ts.rawLogin("alice")
	mustContain(t, rc.ok(`GETMETADATA "" (/shared/comment /shared/admin)`),
		`* METADATA "" (`, `"/shared/admin" "mailto:postmaster@example.org"`, `"/shared/comment" "certmail test"`)
	mustContain(t, rc.ok(`GETMETADATA (DEPTH 1) "" /shared`), `"/shared/admin"`, `"/shared/comment"`)
	rc.fail("NO [NOPERM]", `SETMETADATA "" (/shared/comment "mine")`)
	rc.fail("NO [NOPERM]", `SETMETADATA "" (/shared/vendor/x "mine")`)
	rc.ok(`SETMETADATA "" (/private/devicetoken "abc123")`)
	mustContain(t, rc.ok(`GETMETADATA "" (/private/devicetoken /shared/comment)`), `"/private/devicetoken" "abc123"`, `"/shared/comment" "certmail test"`)
	// Another account has its own server entries.
	bc := ts.rawLogin("bob")
	mustContain(t, bc.ok(`GETMETADATA "" /private/devicetoken`), `("/private/devicetoken" NIL)`)
}

// TestMetadataLimits: the account's limits (RFC 5464 4.3): a value too
// large is NO [METADATA MAXSIZE n], refused before a synchronizing
// literal is sent; too many entries or bytes NO [METADATA TOOMANY]; a
// failed SETMETADATA changes nothing; removing works over a limit.
func TestMetadataLimits(t *testing.T) {
	ts := newTestServer(t, withMetadata(imapsrv.MetadataOptions{MaxEntrySize: 100, MaxEntries: 3, MaxBytes: 250}))
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.fail("NO [METADATA MAXSIZE 100]", fmt.Sprintf(`SETMETADATA INBOX (/private/a "%s")`, strings.Repeat("v", 101)))
	// A synchronizing literal too large gets its NO instead of "+".
	tag := rc.nextTag()
	rc.write(tag + " SETMETADATA INBOX (/private/a {101}\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, tag+" NO [METADATA MAXSIZE 100]") {
		t.Fatalf("literal over the limit: %q", l)
	}
	rc.alive()
	rc.fail("NO [METADATA TOOMANY]", `SETMETADATA INBOX (/private/a "1" /private/b "2" /private/c "3" /private/d "4")`)
	mustContain(t, rc.ok("GETMETADATA (DEPTH infinity) INBOX /private"), `("/private" NIL)`)
	rc.ok(`SETMETADATA INBOX (/private/a "1" /private/b "2")`)
	rc.ok(`SETMETADATA "" (/private/c "3")`)
	rc.fail("NO [METADATA TOOMANY]", `SETMETADATA INBOX (/private/d "4")`)
	// Replacing an entry does not add one.
	rc.ok(`SETMETADATA INBOX (/private/a "one")`)
	rc.ok(`SETMETADATA INBOX (/private/a NIL)`)
	big := strings.Repeat("b", 100)
	rc.ok(fmt.Sprintf(`SETMETADATA INBOX (/private/a "%s" /private/b "%s")`, big, big))
	rc.fail("NO [METADATA TOOMANY]", fmt.Sprintf(`SETMETADATA Sent (/private/c "%s")`, big))
	rc.ok(`SETMETADATA INBOX (/private/a NIL /private/b NIL)`)
	rc.ok(fmt.Sprintf(`SETMETADATA Sent (/private/c "%s")`, big))
}

// TestMetadataMailboxLifecycle: a RENAME takes a mailbox's entries (and
// its children's) along; DELETE removes them, so a mailbox created again
// under the name starts without; deleting the account removes its server
// entries too.
func TestMetadataMailboxLifecycle(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok("CREATE a/b")
	rc.ok(`SETMETADATA a (/private/comment "on a")`)
	rc.ok(`SETMETADATA a/b (/shared/comment "on a/b")`)
	rc.ok(`SETMETADATA "" (/private/devicetoken "tok")`)
	rc.ok("RENAME a c")
	mustContain(t, rc.ok("GETMETADATA c /private/comment"), `"on a"`)
	mustContain(t, rc.ok("GETMETADATA c/b /shared/comment"), `"on a/b"`)
	rc.fail("NO [NONEXISTENT]", "GETMETADATA a /private/comment")
	rc.ok("CREATE a")
	mustContain(t, rc.ok("GETMETADATA a /private/comment"), `("/private/comment" NIL)`)
	rc.ok(`SETMETADATA INBOX (/private/comment "inbox")`)
	rc.ok("RENAME INBOX old")
	mustContain(t, rc.ok("GETMETADATA old /private/comment"), `"inbox"`)
	mustContain(t, rc.ok("GETMETADATA INBOX /private/comment"), `NIL`)
	rc.ok("DELETE c/b")
	rc.ok("DELETE c")
	rc.ok("CREATE c")
	rc.ok("CREATE c/b")
	mustContain(t, rc.ok("GETMETADATA c /private/comment"), `NIL`)
	mustContain(t, rc.ok("GETMETADATA c/b /shared/comment"), `NIL`)
	rc.ok("LOGOUT")

	if err := ts.store.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	ts.addUser("alice")
	if err := ts.store.View(func(tx *mailbox.Tx) error {
		got, err := tx.Metadata("alice", "", []string{"/private", "/shared"}, mailbox.MetadataDepthInfinity)
		if err == nil && len(got) > 0 {
			t.Errorf("a new account of the name finds the old one's entries: %+v", got)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestMetadataRestart: entries are in the store: a restart keeps them.
func TestMetadataRestart(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok(`SETMETADATA INBOX (/private/comment "kept")`)
	rc.ok(`SETMETADATA "" (/private/devicetoken "tok")`)
	rc.conn.Close()
	ts.restart()
	rc = ts.rawLogin("alice")
	mustContain(t, rc.ok("GETMETADATA INBOX /private/comment"), `"kept"`)
	mustContain(t, rc.ok(`GETMETADATA "" /private/devicetoken`), `"tok"`)
}

// TestMetadataChangeFeed: each entry a SETMETADATA changes is announced
// once on the store's change feed when it commits, with its mailbox (the
// server: ID 0 and ""), for NOTIFY; a refused SETMETADATA is not.
func TestMetadataChangeFeed(t *testing.T) {
	ts := newTestServer(t, withMetadata(imapsrv.MetadataOptions{MaxEntrySize: 10}))
	ts.addUser("alice")
	var mu sync.Mutex
	var got []mailbox.Change
	ts.store.OnChange(func(c mailbox.Change) {
		if c.Kind == mailbox.MetadataChanged {
			mu.Lock()
			got = append(got, c)
			mu.Unlock()
		}
	})
	inbox, err := ts.store.Mailbox("alice", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	rc := ts.rawLogin("alice")
	rc.ok(`SETMETADATA INBOX (/private/Comment "x" /shared/comment NIL)`)
	rc.ok(`SETMETADATA "" (/private/devicetoken "t")`)
	rc.fail("NO [METADATA MAXSIZE 10]", `SETMETADATA "" (/private/devicetoken "far too long")`)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("changes: %+v, want 3", got)
	}
	for i, want := range []string{"/private/comment", "/shared/comment"} {
		if c := got[i]; c.Account != "alice" || c.MailboxID != inbox.ID || c.Mailbox != "INBOX" || c.Entry != want {
			t.Errorf("mailbox change %d: %+v, want entry %s", i, c, want)
		}
	}
	if c := got[2]; c.MailboxID != mailbox.ServerMetadataID || c.Mailbox != "" || c.Entry != "/private/devicetoken" {
		t.Errorf("server change: %+v", c)
	}
}

// TestMetadataGoIMAPClient: go-imap's client (which writes the options
// after the mailbox, as RFC 5464's examples do) sets and reads entries.
func TestMetadataGoIMAPClient(t *testing.T) {
	ts := newTestServer(t, withMetadata(imapsrv.MetadataOptions{Comment: "hello"}))
	ts.addUser("alice")
	c := ts.client("alice")
	v := []byte("tok")
	if err := c.SetMetadata("", map[string]*[]byte{"/private/devicetoken": &v}).Wait(); err != nil {
		t.Fatal(err)
	}
	max := uint32(100)
	data, err := c.GetMetadata("", []string{"/private", "/shared"}, &imapclient.GetMetadataOptions{MaxSize: &max, Depth: imapclient.GetMetadataDepthInfinity}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if p := data.Entries["/private/devicetoken"]; p == nil || string(*p) != "tok" {
		t.Errorf("devicetoken: %v", data.Entries)
	}
	if p := data.Entries["/shared/comment"]; p == nil || string(*p) != "hello" {
		t.Errorf("comment: %v", data.Entries)
	}
}
