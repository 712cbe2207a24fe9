package imapsrv_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

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

// TestMoveResponseText: MOVE's responses name MOVE, the untagged COPYUID
// one too (it said "COPY completed"), for MOVE and UID MOVE.
func TestMoveResponseText(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 3)
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	for _, cmd := range []string{`MOVE 1 Trash`, `UID MOVE 3 Trash`} {
		untagged, st := rc.cmd(cmd)
		name := strings.TrimSuffix(strings.TrimSuffix(cmd, " Trash"), " 1")
		name = strings.TrimSuffix(name, " 3")
		if st != "OK "+name+" completed" {
			t.Errorf("%s: tagged %q, want %q", cmd, st, "OK "+name+" completed")
		}
		line := mustContain(t, untagged, "* OK [COPYUID ")
		if !strings.HasSuffix(line, "] MOVE completed") {
			t.Errorf("%s: COPYUID response %q does not say MOVE", cmd, line)
		}
	}
}

// TestMoveIntoItself: a MOVE into the selected mailbox itself answers
// EXPUNGE before EXISTS, the message's new UID taking the last place
// (imaptest's move group; Dovecot's order).
func TestMoveIntoItself(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 1)
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	untagged := rc.ok(`MOVE 1 INBOX`)
	exp, exists := indexOf(untagged, "* 1 EXPUNGE"), indexOf(untagged, "* 1 EXISTS")
	if exp < 0 || exists < 0 || exp > exists {
		t.Errorf("MOVE 1 INBOX: %q, want * 1 EXPUNGE then * 1 EXISTS", untagged)
	}
	mustContain(t, rc.ok(`FETCH 1 (UID)`), "* 1 FETCH (UID 2)")
}
