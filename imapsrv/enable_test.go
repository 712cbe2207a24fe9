package imapsrv_test

import (
	"strings"
	"testing"
)

func TestEnable(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.raw()
	// Before LOGIN, ENABLE is refused (RFC 5161: authenticated state only).
	rc.fail("BAD", `ENABLE IMAP4rev2`)
	rc.ok(`LOGIN alice "secret pw"`)
	mustContain(t, rc.ok(`ENABLE IMAP4rev2`), "* ENABLED IMAP4rev2")
	// Unknown or unsupported extensions are not enabled; supported ones
	// in the same command are.
	en := rc.ok(`ENABLE X-UNKNOWN CONDSTORE`)
	for _, l := range en {
		if strings.Contains(l, "X-UNKNOWN") {
			t.Errorf("ENABLE of an unsupported extension: %q", l)
		}
	}
	mustContain(t, en, "* ENABLED CONDSTORE")
	rc2 := ts.rawLogin("alice")
	mustContain(t, rc2.ok(`enable utf8=accept`), "* ENABLED UTF8=ACCEPT")
	// With UTF8=ACCEPT, mailbox names are UTF-8.
	rc2.ok(`CREATE "Прочее"`)
	mustContain(t, rc2.ok(`LIST "" "Прочее"`), `"Прочее"`)
}
