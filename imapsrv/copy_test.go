package imapsrv_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

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
