package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// STORE (UNCHANGEDSINCE m), RFC 7162 3.1.3 and its example: messages
// changed after m are left alone and named in OK [MODIFIED set] (sequence
// numbers for STORE, UIDs for UID STORE); a .SILENT STORE still reports the
// MODSEQ of what it changed; with CONDSTORE on, STORE's FETCH responses
// carry MODSEQ.
func TestStoreUnchangedSince(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for i := 1; i <= 9; i++ {
		ts.deliver("alice", "INBOX", simpleMessage(fmt.Sprint(i), "body"))
	}
	rc := ts.rawLogin("alice")
	hm := codeNumber(t, rc.ok(`SELECT INBOX (CONDSTORE)`), "HIGHESTMODSEQ")
	other := ts.client("alice")
	other.selectBox("INBOX")
	if err := other.Store(imap.SeqSetNum(7, 9), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	rc.ok(`NOOP`)

	untagged, status := rc.cmd(fmt.Sprintf(`STORE 7,5,9 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\Deleted)`, hm))
	if !strings.HasPrefix(status, "OK [MODIFIED 7,9]") {
		t.Fatalf("conditional STORE: %q", status)
	}
	mustContain(t, untagged, fmt.Sprintf(`* 5 FETCH (UID 5 MODSEQ (%d))`, hm+2))
	for _, l := range untagged {
		if strings.Contains(l, "FLAGS") || strings.Contains(l, "* 7 ") || strings.Contains(l, "* 9 ") {
			t.Fatalf("unexpected %q", l)
		}
	}
	flags := rc.ok(`FETCH 5,7,9 (FLAGS)`)
	mustContain(t, flags, `* 5 FETCH (UID 5 FLAGS (\Deleted) MODSEQ`)
	mustContain(t, flags, `* 7 FETCH (UID 7 FLAGS (\Seen) MODSEQ`)

	// UID STORE: MODIFIED names UIDs; a message that passes gets FLAGS and
	// MODSEQ.
	_, status = rc.cmd(fmt.Sprintf(`UID STORE 4,7 (UNCHANGEDSINCE %d) +FLAGS ($Done)`, hm))
	if !strings.HasPrefix(status, "OK [MODIFIED 7]") {
		t.Fatalf("UID STORE: %q", status)
	}
	// Unconditional STORE with CONDSTORE enabled: FLAGS and MODSEQ.
	mustContain(t, rc.ok(`STORE 1 +FLAGS (\Answered)`), `* 1 FETCH (UID 1 FLAGS (\Answered) MODSEQ (`)
	// Every message passing: plain OK.
	if _, status := rc.cmd(`STORE 2 (UNCHANGEDSINCE 999999) +FLAGS (\Flagged)`); !strings.HasPrefix(status, "OK") || strings.Contains(status, "MODIFIED") {
		t.Fatalf("STORE passing the test: %q", status)
	}
	rc.fail("BAD", `STORE 1 (NOSUCH 1) +FLAGS (\Seen)`)
}

// STORE (UNCHANGEDSINCE 0) fails for every message (RFC 7162 3.1.3: every
// message has a MODSEQ of at least 1), so nothing changes and OK
// [MODIFIED set] names them all; go-imap's StoreOptions could not tell 0
// from no modifier before HasUnchangedSince, and stored the flags.
func TestStoreUnchangedSinceZero(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for i := 1; i <= 4; i++ {
		ts.deliver("alice", "INBOX", simpleMessage(fmt.Sprint(i), "body"))
	}
	rc := ts.rawLogin("alice")
	hm := codeNumber(t, rc.ok(`SELECT INBOX (CONDSTORE)`), "HIGHESTMODSEQ")
	untagged, status := rc.cmd(`STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS (\Seen)`)
	if !strings.HasPrefix(status, "OK [MODIFIED 1:3]") {
		t.Fatalf("STORE (UNCHANGEDSINCE 0): %q", status)
	}
	if len(untagged) != 0 {
		t.Fatalf("STORE (UNCHANGEDSINCE 0) answered %q", untagged)
	}
	_, status = rc.cmd(`UID STORE 2,4 (UNCHANGEDSINCE 0) FLAGS.SILENT (\Deleted)`)
	if !strings.HasPrefix(status, "OK [MODIFIED 2,4]") {
		t.Fatalf("UID STORE (UNCHANGEDSINCE 0): %q", status)
	}
	// go-imap's client sends UNCHANGEDSINCE 0 when asked to.
	c := ts.client("alice")
	c.selectBox("INBOX")
	if err := c.Store(imap.SeqSetNum(4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}},
		&imap.StoreOptions{HasUnchangedSince: true}).Close(); err != nil {
		t.Fatal(err)
	}
	for _, l := range rc.ok(`FETCH 1:4 (FLAGS)`) {
		if strings.Contains(l, `\`) {
			t.Fatalf("a STORE (UNCHANGEDSINCE 0) changed flags: %q", l)
		}
	}
	if got := codeNumber(t, rc.ok(`SELECT INBOX (CONDSTORE)`), "HIGHESTMODSEQ"); got != hm {
		t.Fatalf("HIGHESTMODSEQ %d after failed STOREs, was %d", got, hm)
	}
}
