package imapsrv_test

import (
	"testing"
)

func TestNamespace(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	ns := rc.ok(`NAMESPACE`)
	if len(ns) != 1 || ns[0] != `* NAMESPACE (("" "/")) NIL NIL` {
		t.Errorf("NAMESPACE: %q", ns)
	}
	c := ts.client("alice")
	d, err := c.Namespace().Wait()
	if err != nil || len(d.Personal) != 1 || d.Personal[0].Delim != '/' || d.Other != nil || d.Shared != nil {
		t.Errorf("imapclient NAMESPACE: %+v %v", d, err)
	}
	ts.raw().fail("BAD", `NAMESPACE`)
}
