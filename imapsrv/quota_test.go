package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestQuota: QUOTA (RFC 9208) with the account's one root, "": the
// commands of the RFC's examples (section 4.1), the resources that have a
// limit, SETQUOTA refused (limits are the administrator's), APPEND and
// COPY past a limit NO [OVERQUOTA] (section 4.3 example), MOVE allowed.
func TestQuota(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	caps := capsOf(t, rc.ok("CAPABILITY"))
	for _, c := range []string{"QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"} {
		if !caps[c] {
			t.Errorf("%s not advertised", c)
		}
	}
	if caps["QUOTASET"] {
		t.Errorf("QUOTASET advertised, but SETQUOTA is refused")
	}
	// No limits: no root, since a QUOTA response lists at least one
	// resource (RFC 9208 section 9; Thunderbird's parser reported the
	// empty list `* QUOTA "" ()` as a syntax error).
	untagged := rc.ok("GETQUOTAROOT INBOX")
	if strings.Join(untagged, "|") != `* QUOTAROOT INBOX` {
		t.Errorf("GETQUOTAROOT without limits: %q", untagged)
	}
	rc.fail("NO [NONEXISTENT]", `GETQUOTA ""`)

	storage, messages := int64(10*1024), int64(3)
	if err := ts.store.SetQuota("alice", &storage, &messages); err != nil {
		t.Fatal(err)
	}
	ts.deliver("alice", "INBOX", simpleMessage("one", strings.Repeat("x", 1500)))
	ts.deliver("alice", "INBOX", simpleMessage("two", "y"))
	q, _ := ts.store.Quota("alice")
	kib := (q.StorageUsed + 1023) / 1024
	want := fmt.Sprintf(`* QUOTA "" (STORAGE %d 10 MESSAGE 2 3)`, kib)
	// RFC 9208 4.1.2's example: A003 GETQUOTAROOT INBOX.
	rc.write("A003 GETQUOTAROOT INBOX\r\n")
	untagged, st := rc.readUntilTagged("A003")
	if !strings.HasPrefix(st, "OK") || strings.Join(untagged, "|") != `* QUOTAROOT INBOX ""|`+want {
		t.Errorf("GETQUOTAROOT: %q %q, want %q", untagged, st, want)
	}
	// 4.1.1's: G0001 GETQUOTA root.
	rc.write("G0001 GETQUOTA \"\"\r\n")
	untagged, st = rc.readUntilTagged("G0001")
	if !strings.HasPrefix(st, "OK") || len(untagged) != 1 || untagged[0] != want {
		t.Errorf("GETQUOTA: %q %q", untagged, st)
	}
	rc.fail("NO [NONEXISTENT]", `GETQUOTA "!partition/sda4"`)
	rc.fail("NO [NONEXISTENT]", "GETQUOTAROOT Nowhere")
	// 4.1.3's: S0001 SETQUOTA "#user/alice" (STORAGE 510).
	rc.fail("NO [NOPERM]", `SETQUOTA "" (STORAGE 510)`)
	for _, line := range []string{"GETQUOTA", "GETQUOTAROOT", `SETQUOTA ""`, `SETQUOTA "" (STORAGE)`, `SETQUOTA "" (STORAGE x)`, `GETQUOTA "" extra`} {
		rejects(t, rc, line)
	}

	// The third message fits; the fourth does not (MESSAGE 3).
	msg := simpleMessage("three", "z")
	rc.ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	// 4.3's example: A003 APPEND ... NO [OVERQUOTA].
	rc.write(fmt.Sprintf("A004 APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n", len(msg), msg))
	if _, st := rc.readUntilTagged("A004"); !strings.HasPrefix(st, "NO [OVERQUOTA]") {
		t.Errorf("APPEND past the limit: %q", st)
	}
	rc.ok("SELECT INBOX")
	rc.fail("NO [OVERQUOTA]", "COPY 1 Archive")
	rc.ok("MOVE 1 Archive")
	// A move adds nothing, even at the limit.
	untagged = rc.ok("GETQUOTAROOT Archive")
	mustContain(t, untagged, `* QUOTAROOT "Archive" ""`)
	mustContain(t, untagged, "MESSAGE 3 3")
	rc.ok("EXPUNGE")
	mustContain(t, rc.ok("STATUS INBOX (DELETED DELETED-STORAGE)"), "(DELETED 0 DELETED-STORAGE 0)")
	rc.ok("STORE 1 +FLAGS (\\Deleted)")
	// STATUS DELETED-STORAGE (RFC 9208 4.2): what EXPUNGE would free, in
	// KiB (rounded up; the message flagged is a small one).
	mustContain(t, rc.ok("STATUS INBOX (DELETED DELETED-STORAGE)"), "(DELETED 1 DELETED-STORAGE 1)")
	rc.ok("EXPUNGE")
	mustContain(t, rc.ok(`GETQUOTA ""`), "MESSAGE 2 3")

	// go-imap's client reads the answers.
	c := ts.client("alice")
	data, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil || len(data) != 1 || data[0].Root != "" || data[0].Resources[imap.QuotaResourceMessage].Usage != 2 ||
		data[0].Resources[imap.QuotaResourceMessage].Limit != 3 || data[0].Resources[imap.QuotaResourceStorage].Limit != 10 {
		t.Errorf("go-imap GETQUOTAROOT: %+v, %v", data, err)
	}
}
