package imapsrv_test

import (
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func applyExpunges(t *testing.T, uids []uint32, lines []string) []uint32 {
	t.Helper()
	out := append([]uint32(nil), uids...)
	for _, l := range lines {
		var n int
		if _, err := fmt.Sscanf(l, "* %d EXPUNGE", &n); err != nil {
			continue
		}
		if n < 1 || n > len(out) {
			t.Fatalf("EXPUNGE %d out of range (%d messages): %q", n, len(out), lines)
		}
		out = append(out[:n-1], out[n:]...)
	}
	return out
}

func uidList(t *testing.T, rc *rawClient) []uint32 {
	t.Helper()
	var out []uint32
	for _, l := range rc.ok(`FETCH 1:* (UID)`) {
		var seq, uid uint32
		if _, err := fmt.Sscanf(l, "* %d FETCH (UID %d)", &seq, &uid); err == nil {
			if int(seq) != len(out)+1 {
				t.Fatalf("FETCH out of order: %q", l)
			}
			out = append(out, uid)
		}
	}
	return out
}

func equalUIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestExpunge(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 6)
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	other := ts.rawLogin("alice")
	other.ok(`SELECT INBOX`)

	rc.ok(`STORE 2,3,5 +FLAGS.SILENT (\Deleted)`)
	untagged := rc.ok(`EXPUNGE`)
	if got := applyExpunges(t, []uint32{1, 2, 3, 4, 5, 6}, untagged); !equalUIDs(got, []uint32{1, 4, 6}) {
		t.Errorf("EXPUNGE: %v (%q)", got, untagged)
	}
	if got := uidList(t, rc); !equalUIDs(got, []uint32{1, 4, 6}) {
		t.Errorf("after EXPUNGE: %v", got)
	}
	up := other.ok(`NOOP`)
	if got := applyExpunges(t, []uint32{1, 2, 3, 4, 5, 6}, up); !equalUIDs(got, []uint32{1, 4, 6}) {
		t.Errorf("other session: %v (%q)", got, up)
	}
	// Nothing to expunge.
	if u := rc.ok(`EXPUNGE`); len(u) != 0 {
		t.Errorf("empty EXPUNGE: %q", u)
	}

	// UID EXPUNGE removes only the named \Deleted messages.
	rc.ok(`STORE 1:* +FLAGS.SILENT (\Deleted)`)
	untagged = rc.ok(`UID EXPUNGE 4:5`)
	if got := grep(untagged, "EXPUNGE"); len(got) != 1 || got[0] != "* 2 EXPUNGE" {
		t.Errorf("UID EXPUNGE 4:5: %q", untagged)
	}
	if got := uidList(t, rc); !equalUIDs(got, []uint32{1, 6}) {
		t.Errorf("after UID EXPUNGE: %v", got)
	}
	rc.ok(`STORE 1:* -FLAGS.SILENT (\Deleted)`)
	// UIDs are never reused.
	ts.deliverN("alice", "INBOX", 1)
	mustContain(t, rc.ok(`NOOP`), "* 3 EXISTS")
	if got := uidList(t, rc); !equalUIDs(got, []uint32{1, 6, 7}) {
		t.Errorf("after new delivery: %v", got)
	}
	rc.fail("BAD", `UID EXPUNGE`)
	rc.alive()

	// The go-imap client.
	c := ts.client("alice")
	c.selectBox("INBOX")
	c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	seqs, err := c.Expunge().Collect()
	if err != nil || len(seqs) != 1 || seqs[0] != 2 {
		t.Errorf("imapclient EXPUNGE: %v %v", seqs, err)
	}
}
