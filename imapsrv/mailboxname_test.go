package imapsrv_test

import (
	"strings"
	"testing"
)

// TestMailboxNameNotUTF7: a mailbox name that is a valid astring but not
// valid modified UTF-7 is a name no mailbox has, not a syntax error
// (RFC 3501 5.1.3 makes modified UTF-7 a naming convention): SELECT,
// EXAMINE, STATUS, DELETE, SUBSCRIBE, APPEND, COPY and MOVE get NO
// [NONEXISTENT], LIST and LSUB list nothing, CREATE and RENAME to it are
// refused with a NO that says why. They were BAD. imaptest's "atoms"
// group sends the first two.
func TestMailboxNameNotUTF7(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 1)
	rc := ts.rawLogin("alice")

	const atoms = "!#$&'+,-.0123456789:;<=>?@^_`|[}" // imaptest atoms
	for _, name := range []string{atoms, `"&Jjo"`, `"a&"`, `"&AGE-"`, `"&Jjo!-"`} {
		for _, cmd := range []string{
			"SELECT " + name,
			"EXAMINE " + name,
			"STATUS " + name + " (MESSAGES)",
			"DELETE " + name,
			"SUBSCRIBE " + name,
			"UNSUBSCRIBE " + name,
			"RENAME " + name + " Other",
		} {
			st := rc.fail("NO", cmd)
			if !strings.Contains(st, "[NONEXISTENT]") {
				t.Errorf("%s: %q, want NO [NONEXISTENT]", cmd, st)
			}
		}
		for _, cmd := range []string{"CREATE " + name, "RENAME INBOX " + name, "CREATE " + name + " (USE (\\Junk))"} {
			st := rc.fail("NO", cmd)
			if !strings.Contains(st, "[CANNOT]") || !strings.Contains(st, "modified UTF-7") {
				t.Errorf("%s: %q, want NO [CANNOT] saying why", cmd, st)
			}
		}
		for _, cmd := range []string{
			`LIST "" ` + name,
			`LIST "" ` + strings.TrimSuffix(name, `"`) + `%*` + map[bool]string{true: `"`}[strings.HasSuffix(name, `"`)],
			`LIST ` + name + ` *`,
			`LIST (SUBSCRIBED) "" (` + name + `)`,
			`LSUB "" ` + name,
			`LSUB ` + name + ` *`,
		} {
			if got := rc.ok(cmd); len(got) != 0 {
				t.Errorf("%s listed %q, want nothing", cmd, got)
			}
		}
	}
	// A valid pattern beside an invalid one still lists.
	mustContain(t, rc.ok(`LIST "" ("&Jjo" INBOX)`), `* LIST (`, `INBOX`)

	// Selected state: COPY, MOVE and APPEND to such a name are NO, and
	// the session goes on.
	rc.ok(`SELECT INBOX`)
	for _, cmd := range []string{`COPY 1 "&Jjo"`, `MOVE 1 "&Jjo"`, `UID COPY 1 "&Jjo"`} {
		st := rc.fail("NO", cmd)
		if strings.Contains(st, "SERVERBUG") {
			t.Errorf("%s: %q", cmd, st)
		}
	}
	rc.write("a1 APPEND \"&Jjo\" {5}\r\n")
	if _, st := rc.readUntilTagged("a1"); !strings.HasPrefix(st, "NO") {
		t.Errorf("APPEND: %q, want NO before the literal", st)
	}
	rc.ok(`FETCH 1 (UID)`)
	// Valid modified UTF-7 still works.
	rc.ok(`CREATE "&AMk-t&AOk-"`)
	rc.ok(`SELECT "&AMk-t&AOk-"`)
}
