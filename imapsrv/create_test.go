package imapsrv_test

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestCreate(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")

	rc.ok(`CREATE Projects`)
	rc.ok(`create "With Space"`)
	// A trailing delimiter means "I intend to create children": the name
	// is created without it (RFC 9051 6.3.4).
	rc.ok(`CREATE Folder/`)
	checkNames(t, "after CREATE Folder/", rc.ok(`LIST "" "Folder"`), "Folder")
	// Superior names are created too.
	rc.ok(`CREATE a/b/c`)
	checkNames(t, "hierarchy", rc.ok(`LIST "" "a*"`), "a", "a/b", "a/b/c")
	rc.ok(`SELECT a/b`)
	rc.ok(`SELECT a`)

	// Existing names, however INBOX is spelled.
	st := rc.fail("NO", `CREATE Projects`)
	if !strings.Contains(st, "[ALREADYEXISTS]") {
		t.Errorf("CREATE existing: %q", st)
	}
	rc.fail("NO", `CREATE INBOX`)
	rc.fail("NO", `CREATE inbox`)
	// Bad names: wildcards, empty levels.
	rc.fail("NO", `CREATE "bad*name"`)
	rc.fail("NO", `CREATE "bad%name"`)
	rc.fail("NO", `CREATE "a//b"`)
	rc.fail("NO", `CREATE "/abs"`)
	rc.fail("NO", `CREATE ""`)
	// Syntax errors are BAD, and the connection survives.
	rc.fail("BAD", `CREATE`)
	rc.fail("BAD", `CREATE a b`)
	rc.alive()

	// INBOX children: "inbox/x" is INBOX/x.
	rc.ok(`CREATE inbox/Sub`)
	checkNames(t, "INBOX children", rc.ok(`LIST "" "INBOX/*"`), "INBOX/Sub")
	mustContain(t, rc.ok(`LIST "" "INBOX"`), `\HasChildren`)

	// A new mailbox is empty, selectable and has a UIDVALIDITY.
	sel := rc.ok(`SELECT Projects`)
	mustContain(t, sel, "* 0 EXISTS")
	codeNumber(t, sel, "UIDVALIDITY")
	if n := codeNumber(t, sel, "UIDNEXT"); n != 1 {
		t.Errorf("UIDNEXT of a new mailbox: %d", n)
	}
}

func TestCreateSpecialUse(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")

	rc.ok(`CREATE "Old Mail" (USE (\Archive))`)
	mustContain(t, rc.ok(`LIST "" "Old Mail"`), `\Archive`)
	mustContain(t, rc.ok(`LIST (SPECIAL-USE) "" "*"`), `"Old Mail"`)
	rc.ok(`CREATE Everything (USE (\All))`)
	mustContain(t, rc.ok(`LIST "" "Everything"`), `\All`)
	rc.ok(`CREATE Stars (USE (\Flagged))`)
	mustContain(t, rc.ok(`LIST "" "Stars"`), `\Flagged`)

	st := rc.fail("NO", `CREATE Weird (USE (\Bogus))`)
	if !strings.Contains(st, "[USEATTR]") {
		t.Errorf("unknown USE attribute: %q", st)
	}
	// Nothing was created.
	checkNames(t, "after refused CREATE", rc.ok(`LIST "" "Weird"`))

	// The go-imap client.
	c := ts.client("alice")
	if err := c.Create("Sent Items", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrSent}}).Wait(); err != nil {
		t.Fatal(err)
	}
	mustContain(t, rc.ok(`LIST "" "Sent Items"`), `\Sent`)
}
