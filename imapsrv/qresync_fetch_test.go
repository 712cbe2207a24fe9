package imapsrv_test

import (
	"fmt"
	"testing"

	"certmail/imapsrv"
)

// UID FETCH with (CHANGEDSINCE m VANISHED), RFC 7162 3.2.6 and its
// example ("UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)"),
// in the form neomutt sends on reconnecting (ENABLE QRESYNC, SELECT
// (CONDSTORE), UID FETCH 1:n ...): first VANISHED (EARLIER) with the UIDs
// of the set expunged after m, then a FETCH of each message changed after
// m, through the fast path and the general one.
func TestUIDFetchVanished(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc, _, hm := qresyncBox(t, ts, 10)
	rc.ok(`LOGOUT`)
	want := changeBox(t, ts)

	rc = ts.rawLogin("alice")
	rc.ok(`ENABLE QRESYNC`)
	rc.ok(`SELECT INBOX (CONDSTORE)`)
	for _, slow := range []bool{false, true} {
		imapsrv.SetSlowFetch(ts.srv, slow)
		got := rc.ok(fmt.Sprintf(`UID FETCH 1:10 (FLAGS) (CHANGEDSINCE %d VANISHED)`, hm))
		wantLines(t, fmt.Sprintf("slow=%v", slow), got, append([]string{"* VANISHED (EARLIER) 2,5,9"}, want...)...)
	}
	// Only UIDs of the set; "*" is the highest UID.
	wantLines(t, "UID FETCH 4:6", rc.ok(fmt.Sprintf(`UID FETCH 4:6 (FLAGS) (CHANGEDSINCE %d VANISHED)`, hm)),
		"* VANISHED (EARLIER) 5")
	wantLines(t, "UID FETCH 6:*", rc.ok(fmt.Sprintf(`UID FETCH 6:* (FLAGS) (CHANGEDSINCE %d VANISHED)`, hm)),
		"* VANISHED (EARLIER) 9", want[1])
	// Nothing after the current HIGHESTMODSEQ.
	now := codeNumber(t, rc.ok(`SELECT INBOX`), "HIGHESTMODSEQ")
	wantLines(t, "from HIGHESTMODSEQ", rc.ok(fmt.Sprintf(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)`, now)))

	// An expunge another session made after this session's last
	// command: the client still sees the message, so VANISHED (EARLIER)
	// does not name it; the updates that change and remove it follow the
	// FETCH.
	other := ts.rawLogin("alice")
	other.ok(`SELECT INBOX`)
	other.ok(`UID STORE 4 +FLAGS.SILENT (\Deleted)`)
	other.ok(`UID EXPUNGE 4`)
	got := rc.ok(fmt.Sprintf(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)`, hm))
	if len(got) != 5 {
		t.Fatalf("pending expunge: %q", got)
	}
	wantLines(t, "pending expunge", append(got[:3:3], got[4]), "* VANISHED (EARLIER) 2,5,9", want[0], want[1], "* VANISHED 4")
	mustContain(t, got[3:4], `* 3 FETCH (UID 4 FLAGS (\Deleted) MODSEQ (`)
}

// VANISHED is BAD without ENABLE QRESYNC, outside UID FETCH and without
// CHANGEDSINCE (RFC 7162 3.2.6).
func TestUIDFetchVanishedBad(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)
	rc := ts.rawLogin("alice")
	rc.ok(`ENABLE CONDSTORE`)
	rc.ok(`SELECT INBOX`)
	rejects(t, rc, `UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)`)
	rc.ok(`ENABLE QRESYNC`)
	rejects(t, rc, `FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)`)
	rejects(t, rc, `UID FETCH 1:* (FLAGS) (VANISHED)`)
	rejects(t, rc, `UID FETCH 1:* (FLAGS MODSEQ) (VANISHED)`)
	rejects(t, rc, `UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED 1)`)
	rc.ok(`UID FETCH 1:* (FLAGS) (VANISHED CHANGEDSINCE 1)`)
	rc.ok(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0 VANISHED)`)

}
