package imapsrv_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

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
	f = rc.ok(`STORE 4:* +FLAGS ($Junk)`)
	if len(f) != 2 {
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

func TestCopy(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 4)
	ts.deliver("alice", "Trash", simpleMessage("already there", "x"))
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	rc.ok(`STORE 2 +FLAGS ($Label1 \Flagged)`)
	trashUV := statusUIDValidity(t, rc, "Trash")

	_, st := rc.cmd(`COPY 2:3 Trash`)
	want := "OK [COPYUID " + itoa(trashUV) + " 2:3 2:3]"
	if !strings.HasPrefix(st, want) {
		t.Errorf("COPY: %q, want %q", st, want)
	}
	// Source unchanged, destination has copies with flags.
	mustContain(t, rc.ok(`STATUS INBOX (MESSAGES)`), "MESSAGES 4")
	mustContain(t, rc.ok(`STATUS Trash (MESSAGES UIDNEXT)`), "MESSAGES 3", "UIDNEXT 4")
	ex := ts.rawLogin("alice")
	ex.ok(`EXAMINE Trash`)
	mustContain(t, ex.ok(`UID FETCH 2 (FLAGS)`), `$Label1`, `\Flagged`)
	mustContain(t, ex.ok(`UID FETCH 3 (BODY.PEEK[HEADER.FIELDS (Subject)])`), "Subject: message 3")

	// UID COPY, non-contiguous.
	_, st = rc.cmd(`UID COPY 1,4 Archive`)
	if !strings.HasPrefix(st, "OK [COPYUID "+itoa(statusUIDValidity(t, rc, "Archive"))+" 1,4 1:2]") {
		t.Errorf("UID COPY: %q", st)
	}
	// Into the selected mailbox itself: new UIDs, announced.
	untagged, st := rc.cmd(`COPY 1 INBOX`)
	if !strings.HasPrefix(st, "OK [COPYUID") || !strings.Contains(st, " 1 5]") {
		t.Errorf("COPY to self: %q", st)
	}
	mustContain(t, untagged, "* 5 EXISTS")
	mustContain(t, rc.ok(`FETCH 5 (UID)`), "* 5 FETCH (UID 5)")
	// Nothing to copy: OK without COPYUID.
	_, st = rc.cmd(`UID COPY 99 Trash`)
	if !strings.HasPrefix(st, "OK") || strings.Contains(st, "COPYUID") {
		t.Errorf("UID COPY of nothing: %q", st)
	}
	// Missing destination: TRYCREATE.
	rc.fail("NO [TRYCREATE]", `COPY 1 Nowhere`)
	rc.fail("BAD", `COPY 1`)
	rc.alive()

	// The other session with Trash selected sees the copies arrive.
	ex2 := ts.rawLogin("alice")
	ex2.ok(`SELECT Trash`)
	rc.ok(`COPY 4 Trash`)
	mustContain(t, ex2.ok(`NOOP`), "* 4 EXISTS")

	// The go-imap client.
	c := ts.client("alice")
	c.selectBox("INBOX")
	d, err := c.Copy(imap.SeqSetNum(1), "Junk").Wait()
	if err != nil || d == nil || d.DestUIDs.String() != "1" {
		t.Errorf("imapclient COPY: %+v %v", d, err)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// applyExpunges replays EXPUNGE responses on a list of UIDs, as a client
// does, and returns what is left.
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

func TestMove(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 6)
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	other := ts.rawLogin("alice")
	other.ok(`SELECT INBOX`)
	trash := ts.rawLogin("alice")
	trash.ok(`SELECT Trash`)
	trashUV := statusUIDValidity(t, rc, "Trash")

	// Thunderbird deletes a message.
	untagged, st := rc.cmd(`UID MOVE 3 "Trash"`)
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("UID MOVE: %q", st)
	}
	mustContain(t, untagged, "* OK [COPYUID "+itoa(trashUV)+" 3 1]")
	if got := grep(untagged, "EXPUNGE"); len(got) != 1 || got[0] != "* 3 EXPUNGE" {
		t.Errorf("UID MOVE expunges: %q", untagged)
	}
	// COPYUID comes before the EXPUNGE responses (RFC 6851).
	if !strings.Contains(untagged[0], "COPYUID") {
		t.Errorf("COPYUID not first: %q", untagged)
	}
	if got := uidList(t, rc); !equalUIDs(got, []uint32{1, 2, 4, 5, 6}) {
		t.Errorf("after MOVE: %v", got)
	}

	// Several at once, by sequence number: the EXPUNGE sequence numbers,
	// applied in order, leave exactly the right messages.
	untagged, st = rc.cmd(`MOVE 1,3:4 Trash`)
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("MOVE: %q", st)
	}
	mustContain(t, untagged, "[COPYUID "+itoa(trashUV)+" 1,4:5 2:4]")
	if got := applyExpunges(t, []uint32{1, 2, 4, 5, 6}, untagged); !equalUIDs(got, []uint32{2, 6}) {
		t.Errorf("replayed MOVE expunges: %v (%q)", got, untagged)
	}
	if got := uidList(t, rc); !equalUIDs(got, []uint32{2, 6}) {
		t.Errorf("after MOVE: %v", got)
	}

	// The other INBOX session sees the same expunges; Trash sees the new
	// messages.
	up := other.ok(`NOOP`)
	if got := applyExpunges(t, []uint32{1, 2, 3, 4, 5, 6}, up); !equalUIDs(got, []uint32{2, 6}) {
		t.Errorf("other session after MOVE: %v (%q)", got, up)
	}
	mustContain(t, trash.ok(`NOOP`), "* 4 EXISTS")
	// Flags travel with the message.
	rc.ok(`STORE 1 +FLAGS ($Keep \Flagged)`)
	rc.ok(`MOVE 1 Archive`)
	ar := ts.rawLogin("alice")
	ar.ok(`EXAMINE Archive`)
	mustContain(t, ar.ok(`FETCH 1 (FLAGS)`), `$Keep`, `\Flagged`)

	// Errors.
	rc.fail("NO [TRYCREATE]", `MOVE 1 Nowhere`)
	mustContain(t, rc.ok(`STATUS INBOX (MESSAGES)`), "MESSAGES 1")
	_, st = rc.cmd(`UID MOVE 99 Trash`)
	if !strings.HasPrefix(st, "OK") {
		t.Errorf("UID MOVE of nothing: %q", st)
	}
	rc.fail("BAD", `MOVE 1`)
	rc.alive()

	// The go-imap client.
	c := ts.client("alice")
	c.selectBox("INBOX")
	d, err := c.Move(imap.SeqSetNum(1), "Junk").Wait()
	if err != nil || d == nil || d.DestUIDs.String() != "1" {
		t.Errorf("imapclient MOVE: %+v %v", d, err)
	}
	c.expectUpdates(time.Second, "EXPUNGE 1")
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
