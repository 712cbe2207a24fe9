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

func TestDelete(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")

	rc.ok(`CREATE Doomed`)
	ts.deliverN("alice", "Doomed", 3)
	uv := codeNumber(t, rc.ok(`SELECT Doomed`), "UIDVALIDITY")
	rc.ok(`UNSELECT`)
	rc.ok(`DELETE Doomed`)
	checkNames(t, "after DELETE", rc.ok(`LIST "" "Doomed"`))
	st := rc.fail("NO", `SELECT Doomed`)
	if !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("SELECT deleted: %q", st)
	}
	st = rc.fail("NO", `DELETE Doomed`)
	if !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("DELETE missing: %q", st)
	}

	// Created again: a new UIDVALIDITY, empty, UIDs from 1.
	rc.ok(`CREATE Doomed`)
	sel := rc.ok(`SELECT Doomed`)
	mustContain(t, sel, "* 0 EXISTS")
	if uv2 := codeNumber(t, sel, "UIDVALIDITY"); uv2 == uv {
		t.Errorf("UIDVALIDITY reused after DELETE and CREATE: %d", uv)
	}
	if n := codeNumber(t, sel, "UIDNEXT"); n != 1 {
		t.Errorf("UIDNEXT after re-create: %d", n)
	}
	rc.ok(`UNSELECT`)

	// INBOX cannot be deleted.
	rc.fail("NO", `DELETE INBOX`)
	rc.fail("NO", `delete inbox`)

	// A mailbox with children is not deleted (as on Dovecot); once the
	// children are gone, it is.
	rc.ok(`CREATE Parent/Child`)
	ts.deliverN("alice", "Parent/Child", 1)
	st = rc.fail("NO", `DELETE Parent`)
	if !strings.Contains(st, "[INUSE]") {
		t.Errorf("DELETE with children: %q", st)
	}
	mustContain(t, rc.ok(`STATUS Parent/Child (MESSAGES)`), "MESSAGES 1")
	checkNames(t, "after refused DELETE", rc.ok(`LIST "" "Parent*"`), "Parent", "Parent/Child")
	rc.ok(`DELETE Parent/Child`)
	rc.ok(`DELETE Parent`)
	checkNames(t, "after DELETE of both", rc.ok(`LIST "" "Parent*"`))

	// Deleting the selected mailbox from another session: the first one's
	// later commands do not crash.
	rc.ok(`CREATE Shared`)
	ts.deliverN("alice", "Shared", 2)
	rc.ok(`SELECT Shared`)
	other := ts.rawLogin("alice")
	other.ok(`DELETE Shared`)
	rc.cmd(`FETCH 1:* (FLAGS)`)
	// Its messages are gone for this session too.
	noop := rc.ok(`NOOP`)
	if got := grep(noop, "EXPUNGE"); len(got) != 2 || got[0] != "* 2 EXPUNGE" || got[1] != "* 1 EXPUNGE" {
		t.Errorf("after DELETE by another session: %q", noop)
	}
	rc.cmd(`STORE 1 +FLAGS (\Seen)`)
	mustContain(t, rc.ok(`SEARCH ALL`), "* SEARCH")
	// A new mailbox of the same name is another mailbox.
	other.ok(`CREATE Shared`)
	ts.deliverN("alice", "Shared", 1)
	mustNotContain(t, rc.ok(`NOOP`), "EXISTS")
	rc.ok(`SELECT INBOX`)
}

func TestRename(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")

	rc.ok(`CREATE Old`)
	ts.deliverN("alice", "Old", 2)
	uv := codeNumber(t, rc.ok(`SELECT Old`), "UIDVALIDITY")
	rc.ok(`UNSELECT`)
	rc.ok(`RENAME Old New`)
	checkNames(t, "after RENAME", rc.ok(`LIST "" "Old"`))
	sel := rc.ok(`SELECT New`)
	mustContain(t, sel, "* 2 EXISTS")
	// A renamed mailbox keeps its UIDVALIDITY and UIDs.
	if got := codeNumber(t, sel, "UIDVALIDITY"); got != uv {
		t.Errorf("UIDVALIDITY changed by RENAME: %d -> %d", uv, got)
	}
	mustContain(t, rc.ok(`UID FETCH 1:* (UID)`), "UID 2")
	rc.ok(`UNSELECT`)

	// Children move with their parent.
	rc.ok(`CREATE Tree/Leaf`)
	ts.deliverN("alice", "Tree/Leaf", 1)
	rc.ok(`RENAME Tree Forest`)
	checkNames(t, "renamed hierarchy", rc.ok(`LIST "" "*"`), append([]string{"Forest", "Forest/Leaf", "New"}, defaultNames...)...)
	mustContain(t, rc.ok(`STATUS Forest/Leaf (MESSAGES)`), "MESSAGES 1")

	// Into a new hierarchy: the superior names appear.
	rc.ok(`RENAME New Deep/Under/New`)
	checkNames(t, "rename into hierarchy", rc.ok(`LIST "" "Deep*"`), "Deep", "Deep/Under", "Deep/Under/New")

	// Errors.
	st := rc.fail("NO", `RENAME Nothing Something`)
	if !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("RENAME missing: %q", st)
	}
	st = rc.fail("NO", `RENAME Forest Sent`)
	if !strings.Contains(st, "[ALREADYEXISTS]") {
		t.Errorf("RENAME onto existing: %q", st)
	}
	rc.fail("NO", `RENAME Forest INBOX`)
	rc.fail("BAD", `RENAME Forest`)

	// Renaming INBOX moves its messages into a new mailbox and leaves an
	// empty INBOX (RFC 9051 6.3.6).
	ts.deliverN("alice", "INBOX", 3)
	rc.ok(`RENAME INBOX "Old Inbox"`)
	mustContain(t, rc.ok(`STATUS "Old Inbox" (MESSAGES)`), "MESSAGES 3")
	sel = rc.ok(`SELECT INBOX`)
	mustContain(t, sel, "* 0 EXISTS")
	// New mail still arrives in INBOX.
	ts.deliverN("alice", "INBOX", 1)
	mustContain(t, rc.ok(`NOOP`), "* 1 EXISTS")
	mustContain(t, rc.ok(`STATUS "Old Inbox" (MESSAGES)`), "MESSAGES 3")
	rc.ok(`UNSELECT`)

	// Subscriptions follow the rename.
	rc.ok(`RENAME Junk Spam`)
	// ("Old Inbox" took over INBOX's record, subscription included.)
	checkNames(t, "subscription after RENAME", rc.ok(`LSUB "" "*"`), "Archive", "Drafts", "INBOX", "Old Inbox", "Sent", "Spam", "Trash")
	// Special use follows the mailbox.
	mustContain(t, rc.ok(`LIST "" "Spam"`), `\Junk`)

	// A session with the renamed mailbox selected keeps working.
	rc.ok(`SELECT Spam`)
	other := ts.rawLogin("alice")
	other.ok(`RENAME Spam Junk`)
	ts.deliverN("alice", "Junk", 1)
	mustContain(t, rc.ok(`NOOP`), "* 1 EXISTS")
}

func TestSubscribe(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")

	rc.ok(`CREATE News`)
	checkNames(t, "not subscribed", rc.ok(`LIST (SUBSCRIBED) "" "News"`))
	rc.ok(`SUBSCRIBE News`)
	mustContain(t, rc.ok(`LIST (SUBSCRIBED) "" "News"`), `\Subscribed`)
	mustContain(t, rc.ok(`LSUB "" "News"`), `* LSUB`)
	rc.ok(`SUBSCRIBE News`) // idempotent
	rc.ok(`UNSUBSCRIBE News`)
	checkNames(t, "unsubscribed", rc.ok(`LSUB "" "News"`))
	rc.ok(`UNSUBSCRIBE News`) // idempotent
	rc.ok(`subscribe inbox`)
	// Subscribing to a mailbox that does not exist: the store ties
	// subscriptions to mailboxes, so it is refused with NO.
	if _, st := rc.cmd(`SUBSCRIBE Nowhere`); strings.HasPrefix(st, "BAD") {
		t.Errorf("SUBSCRIBE missing: %q", st)
	}
	rc.alive()
}
