package certified_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"certmail/certified"
	"certmail/mailbox"
)

// TestStubContextRevealsNothingOfM extends the stub-leak tests to
// CONTEXT=SEARCH, CONTEXT=SORT and PARTIAL (RFC 5267 section 4): while M
// is held, searches for M's words and M's size find nothing, in full, in a
// PARTIAL window or in the updates that follow a change to the stub, and a
// SORT by size puts the stub by its own size; once the COD releases M,
// the updating contexts take M in (after the EXISTS that numbers it) and
// the stub out (before its EXPUNGE).
func TestStubContextRevealsNothingOfM(t *testing.T) {
	e := newEnv(t)
	e.post(certified.Spec{Reveal: certified.RevealNone}) // 1: the stub
	for _, m := range []string{
		// 2, 3: M's size (5,865 bytes) is between theirs; the stub's
		// (about 4,400) is not
		mail("Size small", "x@example.org", "", strings.Repeat("s", 5300)),
		mail("Size large", "x@example.org", "", strings.Repeat("l", 6300)),
	} {
		if err := e.store.Update(func(tx *mailbox.Tx) error {
			_, err := tx.Append("alice", "INBOX", []byte(m), mailbox.AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	rc := e.rawLogin("alice")
	rc.ok("SELECT INBOX")
	// Tags r3 to r6 (LOGIN and SELECT are r1, r2).
	for _, c := range [][2]string{
		{"SEARCH RETURN (UPDATE) TEXT " + secret, `* ESEARCH (TAG "r3")`},
		{"SEARCH RETURN (UPDATE PARTIAL 1:5) LARGER 5800 SMALLER 5900", `* ESEARCH (TAG "r4") PARTIAL (1:5 NIL)`},
		{"SORT RETURN (UPDATE PARTIAL 1:3) (SIZE) UTF-8 ALL", `* ESEARCH (TAG "r5") PARTIAL (1:3 1:3)`},
		{"SEARCH RETURN (PARTIAL -1:-3) OR SUBJECT Summons FROM clerk", `* ESEARCH (TAG "r6") PARTIAL (-1:-3 NIL)`},
	} {
		if l := rc.ok(c[0]); !slices.Equal(l, []string{c[1]}) {
			t.Errorf("%s while M is held: %q, want %q", c[0], l, c[1])
		}
	}
	// A change to the stub is matched again, by the stub.
	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if l := rc.ok("NOOP"); len(grep(l, "ESEARCH")) != 0 {
		t.Errorf("a flag change to the stub: %q", l)
	}
	// The COD releases M.
	if _, err := c.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait(); err != nil {
		t.Fatal(err)
	}
	l := rc.ok("NOOP")
	at := func(s string) int {
		t.Helper()
		i := slices.Index(l, s)
		if i < 0 {
			t.Fatalf("after the release, no %q in %q", s, l)
		}
		return i
	}
	if at(`* ESEARCH (TAG "r5") REMOVEFROM (1 1)`) > at("* 1 EXPUNGE") {
		t.Errorf("REMOVEFROM after the stub's EXPUNGE: %q", l)
	}
	exists := at("* 3 EXISTS")
	for _, s := range []string{`* ESEARCH (TAG "r3") ADDTO (0 3)`, `* ESEARCH (TAG "r4") ADDTO (0 3)`, `* ESEARCH (TAG "r5") ADDTO (2 3)`} {
		if at(s) < exists {
			t.Errorf("%q before the EXISTS: %q", s, l)
		}
	}
}

func grep(lines []string, s string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
