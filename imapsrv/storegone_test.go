package imapsrv_test

import (
	"slices"
	"strings"
	"testing"
)

// TestStoreExpungedByAnother: a STORE naming a message another session
// expunged, before this session was told (no EXPUNGE during a STORE,
// RFC 9051 7.5.1), is answered with the message's flags and the change,
// as Dovecot answers it; the OK used to come without a FETCH for it,
// which imaptest reports as "STORE didn't return FETCH FLAGS" (own_flags
// on PostgreSQL: 6-13 a run). And "*" is the last message the client
// sees: when that one was expunged, "5:*" named message 4.
func TestStoreExpungedByAnother(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 5)
	a := ts.rawLogin("alice")
	a.ok(`SELECT INBOX`)
	b := ts.rawLogin("alice")
	b.ok(`SELECT INBOX`)
	b.ok(`STORE 2,5 +FLAGS.SILENT (\Deleted)`)
	b.ok(`EXPUNGE`)

	// A keyword new to the mailbox comes in FLAGS first (RFC 9051
	// 7.3.5), and a flag change queued before the expunge is not
	// written after the answer, taking the client's view back.
	f := a.ok(`STORE 2 +FLAGS (\Flagged $New)`)
	mustContain(t, f, `* FLAGS (`, `$New`)
	fetches := grep(f, `* 2 FETCH (`)
	if len(fetches) == 0 {
		t.Fatalf("STORE 2 on a message expunged elsewhere: no FETCH: %q", f)
	}
	for _, l := range fetches {
		if !strings.Contains(l, `\Flagged`) || !strings.Contains(l, `$New`) || !strings.Contains(l, `\Deleted`) {
			t.Errorf("STORE 2 answered %q, want its flags with \\Flagged $New (all: %q)", l, f)
		}
	}

	f = a.ok(`STORE 5:* +FLAGS (\Seen)`)
	if got := grep(f, " FETCH ("); len(grep(got, `* 5 FETCH (UID 5 FLAGS (\Deleted \Seen))`)) != 1 || len(grep(got, `* 4 FETCH`)) != 0 {
		t.Errorf("STORE 5:* with 5 expunged elsewhere: %q", f)
	}
	mustNotContain(t, grep(b.ok(`UID FETCH 4 (FLAGS)`), " FETCH ("), `\Seen`)

	// UNCHANGEDSINCE fails for a message changed since.
	if _, status := a.cmd(`STORE 2 (UNCHANGEDSINCE 1) +FLAGS (\Draft)`); !strings.HasPrefix(status, "OK [MODIFIED 2]") {
		t.Errorf("STORE UNCHANGEDSINCE on a message expunged elsewhere: %q", status)
	}
	// .SILENT: nothing to report.
	if f := a.ok(`STORE 2 +FLAGS.SILENT (\Draft)`); len(grep(f, "* 2 FETCH")) != 0 {
		t.Errorf("STORE .SILENT answered %q", f)
	}
	// By UID too; a UID STORE may tell of expunges (RFC 9051 7.5.1), and
	// does, after the answer.
	f = a.ok(`UID STORE 2 +FLAGS (\Answered)`)
	i := slices.IndexFunc(f, func(l string) bool {
		return strings.HasPrefix(l, `* 2 FETCH (UID 2 FLAGS (`) && strings.Contains(l, `\Answered`)
	})
	j := slices.Index(f, `* 2 EXPUNGE`)
	if i < 0 || j < i || !slices.Contains(f, `* 4 EXPUNGE`) {
		t.Errorf("UID STORE 2 on a message expunged elsewhere: %q", f)
	}
	if f := a.ok(`NOOP`); len(f) != 0 {
		t.Errorf("NOOP after the STOREs: %q", f)
	}
	// Nothing was stored: the messages are gone.
	if got := grep(a.ok(`FETCH 1:* (UID)`), " FETCH "); len(got) != 3 {
		t.Errorf("after: %q", got)
	}
}

// TestStoreKeywordInFlags: a keyword a STORE names is in FLAGS after
// it, also when the STORE removes it and no message has it (imaptest
// own_flags: "STORE didn't create keyword" for a -FLAGS of a keyword
// another client had just used, which the STORE's client had not yet
// seen in FLAGS). Dovecot lists it too.
func TestStoreKeywordInFlags(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)
	a := ts.rawLogin("alice")
	a.ok(`SELECT INBOX`)
	f := a.ok(`STORE 1 -FLAGS ($Label4)`)
	mustContain(t, f, `* FLAGS (`, `$Label4`)
	mustContain(t, f, `* OK [PERMANENTFLAGS (`, `$Label4`)
	mustContain(t, f, `* 1 FETCH (UID 1 FLAGS ())`)
	// Another session hears of it at its next command, like any new
	// keyword.
	b := ts.rawLogin("alice")
	mustContain(t, b.ok(`SELECT INBOX`), `* FLAGS (`, `$Label4`)
}
