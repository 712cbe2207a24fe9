package imapsrv_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// listNames returns the mailbox names of LIST (or LSUB) responses, sorted.
func listNames(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "* LIST ") && !strings.HasPrefix(l, "* LSUB ") {
			continue
		}
		// * LIST (attrs) "/" name
		i := strings.Index(l, `"/" `)
		if i < 0 {
			i = strings.Index(l, `NIL `)
			if i < 0 {
				continue
			}
			out = append(out, unquote(l[i+4:]))
			continue
		}
		name := l[i+4:]
		// Drop LIST-EXTENDED data after the name.
		if j := strings.Index(name, " ("); j >= 0 && strings.HasPrefix(name, `"`) == (name[j-1] == '"') {
			name = name[:j]
		}
		out = append(out, unquote(name))
	}
	sort.Strings(out)
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
		s = strings.ReplaceAll(s, `\"`, `"`)
		s = strings.ReplaceAll(s, `\\`, `\`)
	}
	return s
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func checkNames(t *testing.T, what string, lines []string, want ...string) {
	t.Helper()
	got := listNames(lines)
	sort.Strings(want)
	if !equalStrings(got, want) {
		t.Errorf("%s: got %q, want %q\n%s", what, got, want, strings.Join(lines, "\n"))
	}
}

var defaultNames = []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}

func TestList(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")

	all := rc.ok(`LIST "" "*"`)
	checkNames(t, `LIST "" "*"`, all, defaultNames...)
	mustContain(t, all, `* LIST (\HasNoChildren) "/" INBOX`)
	mustContain(t, all, `\Sent`, `"/" "Sent"`)
	mustContain(t, all, `\Trash`, `"/" "Trash"`)
	mustContain(t, all, `\Drafts`, `"/" "Drafts"`)
	mustContain(t, all, `\Junk`, `"/" "Junk"`)
	mustContain(t, all, `\Archive`, `"/" "Archive"`)

	// Thunderbird's first LIST.
	sub := rc.ok(`LIST (SUBSCRIBED) "" "*" RETURN (SPECIAL-USE)`)
	checkNames(t, "LIST (SUBSCRIBED)", sub, defaultNames...)
	mustContain(t, sub, `\Subscribed`, `\Sent`, `"/" "Sent"`)
	mustContain(t, sub, `\Subscribed`, `"/" INBOX`)

	// The hierarchy delimiter.
	root := rc.ok(`LIST "" ""`)
	if len(root) != 1 || root[0] != `* LIST (\Noselect) "/" ""` {
		t.Errorf(`LIST "" "": %q`, root)
	}

	// Hierarchy, % and *.
	rc.ok(`CREATE Work/Projects/Alpha`)
	rc.ok(`CREATE Work/Notes`)
	rc.ok(`CREATE "Family Photos"`)
	checkNames(t, `LIST "" "%"`, rc.ok(`LIST "" "%"`), append([]string{"Work", "Family Photos"}, defaultNames...)...)
	checkNames(t, `LIST "" "Work/%"`, rc.ok(`LIST "" "Work/%"`), "Work/Notes", "Work/Projects")
	checkNames(t, `LIST "Work/" "%"`, rc.ok(`LIST "Work/" "%"`), "Work/Notes", "Work/Projects")
	checkNames(t, `LIST "" "Work/*"`, rc.ok(`LIST "" "Work/*"`), "Work/Notes", "Work/Projects", "Work/Projects/Alpha")
	checkNames(t, `LIST "" "*Alpha"`, rc.ok(`LIST "" "*Alpha"`), "Work/Projects/Alpha")
	checkNames(t, `LIST "" "%/%"`, rc.ok(`LIST "" "%/%"`), "Work/Notes", "Work/Projects")
	checkNames(t, `LIST "" "J*"`, rc.ok(`LIST "" "J*"`), "Junk")
	checkNames(t, `LIST "" "nothing*"`, rc.ok(`LIST "" "nothing*"`))
	work := rc.ok(`LIST "" "Work"`)
	mustContain(t, work, `\HasChildren`, `"/" "Work"`)
	mustContain(t, rc.ok(`LIST "" "Work/Notes"`), `\HasNoChildren`, `"/" "Work/Notes"`)
	mustContain(t, rc.ok(`LIST "" "Family Photos"`), `"Family Photos"`)

	// INBOX is case-insensitive, however the client spells it.
	checkNames(t, `LIST "" "inbox"`, rc.ok(`LIST "" "inbox"`), "INBOX")
	checkNames(t, `LIST "" "InBoX"`, rc.ok(`LIST "" "InBoX"`), "INBOX")
	checkNames(t, `LIST "" "inb*"`, rc.ok(`LIST "" "inb*"`), "INBOX")
	// Other names are case-sensitive.
	checkNames(t, `LIST "" "sent"`, rc.ok(`LIST "" "sent"`))

	// LIST-EXTENDED: several patterns, selection and return options.
	checkNames(t, `LIST "" ("INBOX" "Sent")`, rc.ok(`LIST "" ("INBOX" "Sent")`), "INBOX", "Sent")
	su := rc.ok(`LIST (SPECIAL-USE) "" "*"`)
	checkNames(t, "LIST (SPECIAL-USE)", su, "Archive", "Drafts", "Junk", "Sent", "Trash")
	mustContain(t, rc.ok(`LIST "" "%" RETURN (CHILDREN)`), `\HasChildren`, "Work")
	mustContain(t, rc.ok(`LIST "" "INBOX" RETURN (SUBSCRIBED)`), `\Subscribed`, "INBOX")
	// Created mailboxes are not subscribed.
	mustNotContain(t, rc.ok(`LIST "" "Work" RETURN (SUBSCRIBED)`), `\Subscribed`)
	checkNames(t, "LIST (SUBSCRIBED) after CREATE", rc.ok(`LIST (SUBSCRIBED) "" "*"`), defaultNames...)
	rc.fail("BAD", `LIST (RECURSIVEMATCH) "" "*"`)
	// RECURSIVEMATCH: an unsubscribed parent of a subscribed mailbox is
	// listed with CHILDINFO (RFC 5258 3.5).
	rc.ok(`SUBSCRIBE Work/Projects/Alpha`)
	rm := rc.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`)
	checkNames(t, "RECURSIVEMATCH %", rm, append([]string{"Work"}, defaultNames...)...)
	w := mustContain(t, rm, `"/" "Work" (CHILDINFO ("SUBSCRIBED"))`)
	if strings.Contains(w, `\Subscribed`) {
		t.Errorf("unsubscribed Work listed as subscribed: %q", w)
	}
	mustNotContain(t, rm, `INBOX (CHILDINFO`)
	mustContain(t, rc.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "Work/%"`), `"Work/Projects" (CHILDINFO ("SUBSCRIBED"))`)
	checkNames(t, "SUBSCRIBED without RECURSIVEMATCH", rc.ok(`LIST (SUBSCRIBED) "" "%"`), defaultNames...)
	rc.ok(`UNSUBSCRIBE Work/Projects/Alpha`)
	rc.fail("BAD", `LIST (BOGUS) "" "*"`)

	// LIST-STATUS.
	ts.deliverN("alice", "INBOX", 3)
	ls := rc.ok(`LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT SIZE))`)
	mustContain(t, ls, `* LIST`, `INBOX`)
	st := mustContain(t, ls, `* STATUS INBOX (`)
	for _, s := range []string{"MESSAGES 3", "UNSEEN 3", "UIDNEXT 4", "SIZE "} {
		if !strings.Contains(st, s) {
			t.Errorf("LIST-STATUS: %q lacks %q", st, s)
		}
	}
	// A STATUS for each listed selectable mailbox.
	ls = rc.ok(`LIST "" "*" RETURN (STATUS (MESSAGES))`)
	if n := len(grep(ls, "* STATUS ")); n != len(grep(ls, "* LIST ")) {
		t.Errorf("LIST-STATUS: %d STATUS for %d LIST:\n%s", n, len(grep(ls, "* LIST ")), strings.Join(ls, "\n"))
	}

	// Non-ASCII names round-trip in modified UTF-7 (IMAP4rev1 clients).
	rc.ok(`CREATE "&AMk-t&AOk-"`) // "Été"
	mustContain(t, rc.ok(`LIST "" "&AMk-*"`), `"/" "&AMk-t&AOk-"`)

	// The go-imap client parses all of it.
	c := ts.client("alice")
	boxes, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true, ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]*imap.ListData{}
	for _, b := range boxes {
		found[b.Mailbox] = b
	}
	if d := found["INBOX"]; d == nil || d.Status == nil || d.Status.NumMessages == nil || *d.Status.NumMessages != 3 {
		t.Errorf("imapclient LIST-STATUS INBOX: %+v", d)
	}
	if d := found["Été"]; d == nil {
		t.Errorf("imapclient: Été not listed: %v", boxes)
	}
	if d := found["Trash"]; d == nil || !hasAttr(d.Attrs, imap.MailboxAttrTrash) {
		t.Errorf("imapclient: Trash: %+v", d)
	}
	if d := found["Work"]; d == nil || d.Delim != '/' {
		t.Errorf("imapclient: Work: %+v", d)
	}
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}
