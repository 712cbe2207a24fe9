package imapsrv_test

import (
	"strings"
	"testing"
)

// TestIsolation: nothing user B can send reaches user A's mailboxes.
func TestIsolation(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.addUser("bob")
	a := ts.rawLogin("alice")
	a.ok(`CREATE "Alice Secrets"`)
	ts.deliver("alice", "Alice Secrets", simpleMessage("secret", "the launch code is 1234"))
	ts.deliver("alice", "INBOX", simpleMessage("for alice", "private"))
	aliceUV := statusUIDValidity(t, a, "INBOX")

	b := ts.rawLogin("bob")
	// Bob's LIST shows Bob's mailboxes only.
	all := b.ok(`LIST "" "*"`)
	checkNames(t, "bob's LIST", all, defaultNames...)
	checkNames(t, "bob's LIST %/%", b.ok(`LIST "" "%/%"`))
	checkNames(t, "bob's LSUB", b.ok(`LSUB "" "*"`), defaultNames...)
	// Names that might reach another account.
	for _, name := range []string{`"Alice Secrets"`, `"alice/Alice Secrets"`, `"../alice/INBOX"`, `"/alice/INBOX"`,
		`"alice\u0000INBOX"`, `"~alice/INBOX"`, `"#alice/INBOX"`, `"user/alice/INBOX"`} {
		if _, st := b.cmd(`SELECT ` + name); strings.HasPrefix(st, "OK") {
			t.Errorf("bob selected %s", name)
		}
		if _, st := b.cmd(`STATUS ` + name + ` (MESSAGES)`); strings.HasPrefix(st, "OK") {
			t.Errorf("bob got STATUS of %s", name)
		}
		if _, st := b.cmd(`EXAMINE ` + name); strings.HasPrefix(st, "OK") {
			t.Errorf("bob examined %s", name)
		}
		if _, st := b.cmd(`DELETE ` + name); strings.HasPrefix(st, "OK") {
			t.Errorf("bob deleted %s", name)
		}
		if _, st := b.cmd(`RENAME ` + name + ` Stolen`); strings.HasPrefix(st, "OK") {
			t.Errorf("bob renamed %s", name)
		}
		if _, st := b.cmd(`SUBSCRIBE ` + name); strings.HasPrefix(st, "OK") {
			t.Errorf("bob subscribed to %s", name)
		}
		if _, st := b.appendRaw(name, simpleMessage("planted", "x")); strings.HasPrefix(st, "OK") {
			t.Errorf("bob appended to %s", name)
		}
		b.alive()
	}
	// Bob's INBOX is Bob's: empty, with its own UIDVALIDITY.
	sel := b.ok(`SELECT INBOX`)
	mustContain(t, sel, "* 0 EXISTS")
	if codeNumber(t, sel, "UIDVALIDITY") == aliceUV {
		t.Errorf("bob's INBOX has alice's UIDVALIDITY")
	}
	// UIDs that exist in Alice's INBOX mean nothing in Bob's.
	if f := b.ok(`UID FETCH 1:* (BODY.PEEK[])`); len(f) != 0 {
		t.Errorf("bob fetched %q", f)
	}
	if got := search(t, b, `TEXT private`); got != "" {
		t.Errorf("bob's SEARCH found %q", got)
	}
	// COPY and MOVE into a name only Alice has: TRYCREATE, nothing copied.
	ts.deliver("bob", "INBOX", simpleMessage("bob's", "mine"))
	b.ok(`NOOP`)
	b.fail("NO [TRYCREATE]", `COPY 1 "Alice Secrets"`)
	b.fail("NO [TRYCREATE]", `MOVE 1 "Alice Secrets"`)
	mustContain(t, a.ok(`STATUS "Alice Secrets" (MESSAGES)`), "MESSAGES 1")
	mustContain(t, a.ok(`STATUS INBOX (MESSAGES)`), "MESSAGES 1")
	// Bob creating a mailbox of the same name makes his own.
	b.ok(`CREATE "Alice Secrets"`)
	b.ok(`COPY 1 "Alice Secrets"`)
	mustContain(t, a.ok(`STATUS "Alice Secrets" (MESSAGES)`), "MESSAGES 1")
	mustContain(t, b.ok(`STATUS "Alice Secrets" (MESSAGES)`), "MESSAGES 1")
	a.ok(`EXAMINE "Alice Secrets"`)
	mustContain(t, a.ok(`FETCH 1 (BODY.PEEK[TEXT])`), "launch code")

	// Alice's IDLE does not see Bob's deliveries, nor the reverse.
	a.ok(`SELECT INBOX`)
	b.ok(`SELECT INBOX`)
	ts.deliver("bob", "INBOX", simpleMessage("bob again", "x"))
	mustNotContain(t, a.ok(`NOOP`), "EXISTS")
	mustContain(t, b.ok(`NOOP`), "* 2 EXISTS")

	// Logging in as one user with the other's password fails.
	if _, st := ts.raw().cmd(`LOGIN bob wrong`); strings.HasPrefix(st, "OK") {
		t.Errorf("wrong password accepted")
	}
}
