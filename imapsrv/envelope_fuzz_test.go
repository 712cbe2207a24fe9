package imapsrv

import (
	"strings"
	"testing"
)

// FuzzParseAddressList: whatever an address field holds, parsing it for
// ENVELOPE never panics, group markers pair up (a start, then an end,
// never nested), every address that is not a marker has a mailbox and a
// host, and the SEARCH forms are built without panicking. Seeds in
// testdata/fuzz/FuzzParseAddressList.
func FuzzParseAddressList(f *testing.F) {
	f.Fuzz(func(t *testing.T, v string) {
		open := false
		for _, a := range parseAddressList(v) {
			switch {
			case a.IsGroupEnd():
				if !open {
					t.Fatalf("%q: group end without a start", v)
				}
				open = false
			case a.IsGroupStart():
				if open {
					t.Fatalf("%q: nested group start", v)
				}
				open = true
			default:
				if a.Mailbox == "" || a.Host == "" {
					t.Fatalf("%q: address %+v without mailbox or host", v, a)
				}
				if a.Route != "" && !strings.HasPrefix(a.Route, "@") {
					t.Fatalf("%q: route %q", v, a.Route)
				}
			}
		}
		if open {
			t.Fatalf("%q: group left open", v)
		}
		addressStrings(v)
	})
}
