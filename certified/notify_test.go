package certified_test

import (
	"strconv"
	"strings"
	"testing"

	"certmail/certified"
)

// TestStubNotifyRevealsNothingOfM extends the stub-leak tests to NOTIFY
// (RFC 5465): a session following INBOX as its selected mailbox with
// MessageNew fetch attributes that would show M's size, headers, body
// and structure, and one following every personal mailbox by STATUS and
// LIST, hear of the stub's arrival with the stub's own data only, and of
// no mailbox but INBOX (custody is no mailbox of the recipient's).
func TestStubNotifyRevealsNothingOfM(t *testing.T) {
	e := newEnv(t)
	sel := e.rawLogin("alice")
	sel.ok("SELECT INBOX")
	sel.ok(`NOTIFY SET (SELECTED (MessageNew (UID RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER] BODY[TEXT] BINARY.SIZE[1] EMAILID) MessageExpunge FlagChange))`)
	other := e.rawLogin("alice")
	other.ok(`NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))`)

	e.post(certified.Spec{Reveal: certified.RevealNone})

	got := sel.ok("NOOP")
	all := strings.Join(got, "\n")
	if !strings.Contains(all, "* 1 FETCH (UID 1 RFC822.SIZE ") {
		t.Fatalf("no FETCH of the stub after its EXISTS:\n%s", all)
	}
	if strings.Contains(all, secret) || strings.Contains(all, "court.example>") {
		t.Errorf("MessageNew's FETCH shows M:\n%s", all)
	}
	if strings.Contains(all, "RFC822.SIZE "+strconv.Itoa(len(heldMessage))+" ") {
		t.Errorf("MessageNew's FETCH has M's size %d:\n%s", len(heldMessage), all)
	}
	// BODY[TEXT] was read as BODY.PEEK[TEXT]: the stub is still unseen.
	if l := sel.ok("FETCH 1 FLAGS"); len(l) != 1 || strings.Contains(l[0], `\Seen`) {
		t.Errorf("the notification set \\Seen: %q", l)
	}

	got = other.ok("NOOP")
	all = strings.Join(got, "\n")
	if !strings.Contains(all, "* STATUS INBOX (MESSAGES 1 ") {
		t.Fatalf("no STATUS of INBOX:\n%s", all)
	}
	for _, l := range got {
		if !strings.HasPrefix(l, "* STATUS INBOX ") {
			t.Errorf("told of more than INBOX's STATUS: %q", l)
		}
	}
	if strings.Contains(all, secret) || strings.Contains(all, strconv.Itoa(len(heldMessage))) {
		t.Errorf("STATUS shows M:\n%s", all)
	}
}
