package imapsrv_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"certmail/imapsrv"
)

// A flag change another session made just before this session's own STORE
// is queued for this session, older than the STORE's response: it is
// written with the message's flags as they are when it is written, so the
// client's view never goes back, nor its MODSEQ down (RFC 7162 3.2;
// imaptest's QRESYNC stress run reported "MODSEQ dropped" and the
// client's copy lost \Deleted).
func TestQueuedFlagsNeverGoBack(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 1)
	for _, enable := range []string{"QRESYNC", "CONDSTORE", ""} {
		rc := ts.rawLogin("alice")
		if enable != "" {
			rc.ok("ENABLE " + enable)
		}
		rc.ok(`SELECT INBOX`)
		other := ts.rawLogin("alice")
		other.ok(`SELECT INBOX`)
		other.ok(`STORE 1 FLAGS.SILENT (\Flagged)`)
		got := rc.ok(`STORE 1 +FLAGS (\Seen)`)
		if len(got) != 2 {
			t.Fatalf("%s: STORE: %q", enable, got)
		}
		re := regexp.MustCompile(`^\* 1 FETCH \(UID 1 FLAGS \(([^)]*)\)(?: MODSEQ \((\d+)\))?\)$`)
		var last uint64
		for _, l := range got {
			m := re.FindStringSubmatch(l)
			if m == nil || m[1] != `\Flagged \Seen` {
				t.Fatalf("%s: %q in %q", enable, l, got)
			}
			if enable != "" {
				ms, _ := strconv.ParseUint(m[2], 10, 64)
				if ms < last {
					t.Fatalf("%s: MODSEQ went down: %q", enable, got)
				}
				last = ms
			} else if m[2] != "" {
				t.Fatalf("MODSEQ without CONDSTORE: %q", got)
			}
		}
		other.ok(`STORE 1 FLAGS.SILENT ()`)
		rc.ok(`LOGOUT`)
	}
}

// The same when the message is expunged by another session between this
// session's STORE and the updates that end it: its queued flag change,
// older than the STORE's response, is not written (its flags now are not
// known); the VANISHED or EXPUNGE that follows removes it.
func TestQueuedFlagsOfExpungedNotWritten(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)
	rc := ts.rawLogin("alice")
	rc.ok("ENABLE QRESYNC")
	rc.ok(`SELECT INBOX`)
	other := ts.rawLogin("alice")
	other.ok(`SELECT INBOX`)
	other.ok(`STORE 2 FLAGS.SILENT (\Deleted)`)
	imapsrv.AfterStore(ts.srv, func() {
		imapsrv.AfterStore(ts.srv, nil)
		other.ok(`EXPUNGE`)
	})
	got := rc.ok(`STORE 2 +FLAGS (\Seen)`)
	if len(got) != 1 || !strings.HasPrefix(got[0], `* 2 FETCH (UID 2 FLAGS (\Deleted \Seen) MODSEQ (`) {
		t.Fatalf("STORE: %q", got)
	}
	wantLines(t, "NOOP", rc.ok(`NOOP`), "* VANISHED 2")
}
