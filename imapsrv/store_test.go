package imapsrv_test

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestStore(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 5)
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	other := ts.rawLogin("alice")
	other.ok(`SELECT INBOX`)

	// Thunderbird marks a message read.
	f := rc.ok(`UID STORE 2 +FLAGS (\Seen)`)
	if len(f) != 1 || f[0] != `* 2 FETCH (UID 2 FLAGS (\Seen))` {
		t.Errorf("UID STORE +FLAGS: %q", f)
	}
	// Adding what is there changes nothing but still answers.
	mustContain(t, rc.ok(`UID STORE 2 +FLAGS (\Seen)`), `* 2 FETCH (UID 2 FLAGS (\Seen))`)
	// System flags are case-insensitive and stored canonically; keywords
	// keep their case.
	mustContain(t, rc.ok(`STORE 3 +FLAGS (\flagged $Label1 Work)`), `* 3 FETCH (UID 3 FLAGS (\Flagged $Label1 Work))`)
	mustContain(t, rc.ok(`STORE 3 -FLAGS ($label1)`), `* 3 FETCH (UID 3 FLAGS (\Flagged Work))`)
	// Replace.
	mustContain(t, rc.ok(`STORE 3 FLAGS (\Answered \Draft)`), `* 3 FETCH (UID 3 FLAGS (\Answered \Draft))`)
	mustContain(t, rc.ok(`STORE 3 FLAGS ()`), `* 3 FETCH (UID 3 FLAGS ())`)
	// \Recent cannot be set.
	mustNotContain(t, rc.ok(`STORE 4 +FLAGS (\Recent)`), `\Recent`)
	// .SILENT: no FETCH back, but the change is made.
	if f := rc.ok(`STORE 1:2 +FLAGS.SILENT (\Deleted)`); len(f) != 0 {
		t.Errorf("STORE .SILENT answered %q", f)
	}
	mustContain(t, rc.ok(`FETCH 1 (FLAGS)`), `\Deleted`)
	if f := rc.ok(`UID STORE 1 -FLAGS.SILENT (\Deleted)`); len(f) != 0 {
		t.Errorf("UID STORE -FLAGS.SILENT answered %q", f)
	}
	// Ranges and "*".
	// $Junk is new: FLAGS and PERMANENTFLAGS come first (keywords_test.go).
	f = rc.ok(`STORE 4:* +FLAGS ($Junk)`)
	if len(grep(f, " FETCH (")) != 2 {
		t.Errorf("STORE 4:*: %q", f)
	}
	f = rc.ok(`UID STORE 1:* -FLAGS ($Junk)`)
	if len(grep(f, "$Junk")) != 0 {
		t.Errorf("UID STORE 1:* -FLAGS: %q", f)
	}

	// The other session sees every change (the latest flags).
	up := other.ok(`NOOP`)
	mustContain(t, up, `* 2 FETCH (`, `\Seen`)
	mustContain(t, up, `* 1 FETCH (`, `FLAGS ()`)
	mustContain(t, up, `* 2 FETCH (`, `\Deleted`)
	// Keywords in use are listed in FLAGS.
	rc.ok(`STORE 5 +FLAGS (Work)`)
	mustContain(t, rc.ok(`SELECT INBOX`), `* FLAGS (`, `Work`)

	// Errors: bad syntax is BAD, and the connection survives.
	rc.fail("BAD", `STORE 1 +FLAGS`)
	rc.fail("BAD", `STORE 1 BOGUS (\Seen)`)
	rc.fail("BAD", `STORE 1 +FLAGS ("quoted")`)
	rc.alive()

	// The go-imap client.
	c := ts.client("alice")
	c.selectBox("INBOX")
	bufs, err := c.Store(imap.UIDSetNum(5), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Important"}}, nil).Collect()
	if err != nil || len(bufs) != 1 || flagString(bufs[0].Flags) != `(Work \Flagged $Important)` {
		t.Errorf("imapclient STORE: %v %v", bufs, err)
	}
}

// applyExpunges replays EXPUNGE responses on a list of UIDs, as a client
// does, and returns what is left.
