package imapsrv_test

import (
	"strings"
	"testing"
)

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
