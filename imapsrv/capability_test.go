package imapsrv_test

import (
	"sort"
	"strings"
	"testing"
)

func TestCapability(t *testing.T) {
	ts := newTestServer(t, withAppendLimit(12345))
	ts.addUser("alice")
	rc := ts.raw()

	// Before authentication: the greeting and CAPABILITY offer LOGIN and
	// AUTH=PLAIN (loopback), and not the post-auth extensions.
	pre := capsOf(t, rc.ok("CAPABILITY"))
	for _, c := range []string{"IMAP4rev1", "IMAP4rev2", "SASL-IR", "AUTH=PLAIN"} {
		if !pre[c] {
			t.Errorf("pre-auth capability %s missing: %v", c, keys(pre))
		}
	}
	if pre["LOGINDISABLED"] {
		t.Errorf("LOGINDISABLED on loopback")
	}
	if !strings.Contains(rc.Greeting, "[CAPABILITY ") {
		t.Errorf("greeting without capabilities: %q", rc.Greeting)
	}

	rc.ok(`LOGIN alice "secret pw"`)
	post := capsOf(t, rc.ok("CAPABILITY"))
	want := []string{"IMAP4rev1", "IMAP4rev2", "IDLE", "MOVE", "UIDPLUS", "NAMESPACE", "UNSELECT",
		"ENABLE", "ESEARCH", "SEARCHRES", "LIST-EXTENDED", "LIST-STATUS", "STATUS=SIZE",
		"SPECIAL-USE", "CREATE-SPECIAL-USE", "LITERAL+", "APPENDLIMIT=12345", "SASL-IR", "ID", "COMPRESS=DEFLATE", "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE",
		"SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "CONTEXT=SEARCH", "CONTEXT=SORT", "PARTIAL",
		"OBJECTID", "SAVEDATE", "CONDSTORE", "QRESYNC", "PREVIEW", "BINARY", "MULTIAPPEND", "METADATA", "METADATA-SERVER", "CATENATE", "NOTIFY"}
	// Added by go-imap on its own and implemented by it: LITERAL- is
	// implied by LITERAL+ (RFC 7888), UTF8=ACCEPT is handled by the
	// protocol layer (IMAP4rev2 requires UTF-8 anyway), CHILDREN is part
	// of IMAP4rev2 and LIST always returns \HasChildren/\HasNoChildren
	// (checked in TestList).
	allowedExtra := map[string]bool{"LITERAL-": true, "UTF8=ACCEPT": true, "CHILDREN": true}
	for _, c := range want {
		if !post[c] {
			t.Errorf("capability %s missing after login: %v", c, keys(post))
		}
		delete(post, c)
	}
	for c := range post {
		if !allowedExtra[c] {
			t.Errorf("unexpected capability %s advertised", c)
		}
	}
	// AUTH=PLAIN is a pre-authentication capability.
	if !pre["AUTH=PLAIN"] {
		t.Errorf("AUTH=PLAIN not advertised before login")
	}
}

func capsOf(t *testing.T, untagged []string) map[string]bool {
	t.Helper()
	line := mustContain(t, untagged, "* CAPABILITY ")
	out := make(map[string]bool)
	for _, f := range strings.Fields(strings.TrimPrefix(line, "* CAPABILITY ")) {
		out[f] = true
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
