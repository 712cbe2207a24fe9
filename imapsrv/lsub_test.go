package imapsrv_test

import (
	"strings"
	"testing"
)

func TestLsub(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")

	lsub := rc.ok(`LSUB "" "*"`)
	checkNames(t, `LSUB "" "*"`, lsub, defaultNames...)
	for _, l := range lsub {
		if !strings.HasPrefix(l, "* LSUB ") {
			t.Errorf("LSUB answered with %q", l)
		}
	}
	rc.ok(`UNSUBSCRIBE Junk`)
	checkNames(t, `LSUB after UNSUBSCRIBE`, rc.ok(`LSUB "" "*"`), "Archive", "Drafts", "INBOX", "Sent", "Trash")
	rc.ok(`CREATE Lists/go`)
	rc.ok(`SUBSCRIBE Lists/go`)
	checkNames(t, `LSUB "" "Lists/*"`, rc.ok(`LSUB "" "Lists/*"`), "Lists/go")
	checkNames(t, `lsub "" "inbox"`, rc.ok(`lsub "" "inbox"`), "INBOX")
}
