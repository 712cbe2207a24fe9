package certified_test

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"certmail/certified"
)

// TestStubPreviewRevealsNothingOfM extends the stub-leak tests to RFC
// 8970: the stub's PREVIEW (LAZY or not) is the stub's own text, never
// M's; once the COD releases M, M's PREVIEW is M's text.
func TestStubPreviewRevealsNothingOfM(t *testing.T) {
	e := newEnv(t)
	it := e.post(certified.Spec{Reveal: certified.RevealNone})
	rc := e.rawLogin("alice")
	rc.ok("SELECT INBOX")
	var stub []string
	for _, cmd := range []string{"FETCH 1 (PREVIEW)", "FETCH 1 (PREVIEW (LAZY))", "FETCH 1 PREVIEW"} {
		lines := rc.ok(cmd)
		all := strings.Join(lines, "\n")
		if !strings.Contains(all, "PREVIEW \"") {
			t.Fatalf("%s: no preview text: %q", cmd, lines)
		}
		for _, leak := range []string{secret, "summoned", "padding", "clerk@court", "Summons"} {
			if strings.Contains(all, leak) {
				t.Fatalf("%s: the stub's PREVIEW leaks M (%q): %q", cmd, leak, lines)
			}
		}
		stub = lines
	}
	if !strings.Contains(strings.Join(stub, "\n"), it.Label) {
		t.Errorf("the stub's preview does not show the stub's text (its label %s): %q", it.Label, stub)
	}

	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait(); err != nil {
		t.Fatalf("MOVE to Acknowledge: %v", err)
	}
	rc.ok("NOOP")
	lines := rc.ok("FETCH 1:* (PREVIEW)")
	if len(lines) != 1 || !strings.Contains(lines[0], `PREVIEW "You are summoned. Case `+secret+`. padding line padding line`) {
		t.Fatalf("INBOX after the release: %q, want M's preview", lines)
	}
}
