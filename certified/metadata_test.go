package certified_test

import (
	"strings"
	"testing"

	"certmail/certified"
)

// TestStubMetadataRevealsNothingOfM extends the stub-leak tests to RFC
// 5464: no server or mailbox entry, in any mailbox the stub or the item's
// evidence touch, says anything of M while it is held, and the entries a
// client set stay as they were across the release.
func TestStubMetadataRevealsNothingOfM(t *testing.T) {
	e := newEnv(t)
	e.post(certified.Spec{Reveal: certified.RevealNone})
	rc := e.rawLogin("alice")
	rc.ok(`SETMETADATA INBOX (/private/comment "inbox")`)
	var lines []string
	for _, box := range []string{`""`, "INBOX", certified.AckMailbox} {
		lines = append(lines, rc.ok("GETMETADATA (DEPTH infinity) "+box+" (/private /shared)")...)
	}
	all := strings.Join(lines, "\n")
	for _, leak := range []string{secret, "summoned", "Summons", "clerk@court"} {
		if strings.Contains(all, leak) {
			t.Fatalf("METADATA leaks M (%q): %q", leak, lines)
		}
	}
	rc.ok("SELECT INBOX")
	rc.ok("MOVE 1 " + certified.AckMailbox)
	var after []string
	for _, l := range rc.ok("GETMETADATA (DEPTH infinity) INBOX (/private /shared)") {
		if strings.HasPrefix(l, "* METADATA ") {
			after = append(after, l)
		}
	}
	if len(after) != 1 || !strings.Contains(after[0], `"/private/comment" "inbox"`) || strings.Contains(after[0], secret) {
		t.Fatalf("INBOX entries after the release: %q", after)
	}
}
