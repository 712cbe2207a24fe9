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

// TestLsubNoselectParent: RFC 3501 6.3.9: with foo/bar subscribed and foo
// not, LSUB "" "foo/%"-style patterns return the unsubscribed level the
// pattern stops at with \Noselect (imaptest's subscribe group); "*"
// returns only subscribed names.
func TestLsubNoselectParent(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	for _, n := range []string{"box/test", "box/test2/test", "box/test3/test3"} {
		rc.ok(`CREATE ` + n)
	}
	for _, n := range []string{"box/test", "box/test2/test", "box/test3/test3"} {
		rc.ok(`SUBSCRIBE ` + n)
	}
	ls := rc.ok(`LSUB "" "box/%"`)
	checkNames(t, `LSUB "" "box/%"`, ls, "box/test", "box/test2", "box/test3")
	for _, n := range []string{"box/test2", "box/test3"} {
		if l := mustContain(t, ls, `"/" "`+n+`"`); !strings.Contains(l, `\Noselect`) {
			t.Errorf("unsubscribed parent %s: %q, want \\Noselect", n, l)
		}
	}
	if l := mustContain(t, ls, `"/" "box/test"`); strings.Contains(l, `\Noselect`) {
		t.Errorf("subscribed box/test: %q", l)
	}
	checkNames(t, `LSUB "" "%"`, rc.ok(`LSUB "" "%"`), "Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", "box")
	checkNames(t, `LSUB "" "box/*"`, rc.ok(`LSUB "" "box/*"`), "box/test", "box/test2/test", "box/test3/test3")
	// LIST (SUBSCRIBED) does not list the parents (RFC 5258 3.1).
	checkNames(t, `LIST (SUBSCRIBED) "" "box/%"`, rc.ok(`LIST (SUBSCRIBED) "" "box/%"`), "box/test")
}
