package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"certmail/mailbox"
)

// idleLines starts IDLE on rc, runs do, and returns what arrived during
// the IDLE within wait of the last line, then ends the IDLE.
func (rc *rawClient) idleLines(wait time.Duration, do func()) []string {
	rc.t.Helper()
	tag := rc.nextTag()
	rc.write(tag + " IDLE\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "+") {
		rc.t.Fatalf("IDLE: %q", l)
	}
	do()
	var got []string
	for {
		l, err := rc.tryReadLine(wait)
		if err != nil {
			break
		}
		got = append(got, l)
	}
	rc.write("DONE\r\n")
	untagged, status := rc.readUntilTagged(tag)
	if !strings.HasPrefix(status, "OK") {
		rc.t.Fatalf("IDLE: %q", status)
	}
	return append(got, untagged...)
}

// TestNotifyAdvertised: NOTIFY is listed after login (RFC 5465 section 3).
func TestNotifyAdvertised(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	mustContain(t, rc.ok("CAPABILITY"), " NOTIFY")
}

// TestNotifyRFCExamples replays the examples of RFC 5465 (sections 3.1
// and 8, with the verified errata's parentheses) against a mailbox tree
// like theirs: each is accepted, the STATUS indicator's responses name
// every mailbox covered with message events and not the selected one,
// and NOTIFY NONE ends it all.
func TestNotifyRFCExamples(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	for _, name := range []string{"Lists", "Lists/Lemonade", "Lists/IMAP", "misc"} {
		rc.ok("CREATE " + name)
	}
	ts.deliver("alice", "Lists/Lemonade", simpleMessage("lemonade", "x"))
	rc.ok("SELECT INBOX")

	got := rc.ok(`NOTIFY SET STATUS (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From To)]) MessageExpunge)) (SUBTREE Lists (MessageNew MessageExpunge))`)
	mustContain(t, got, `* STATUS "Lists/Lemonade" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY `)
	mustContain(t, got, `* STATUS "Lists/IMAP" (MESSAGES 0 `)
	mustContain(t, got, `* STATUS "Lists" (MESSAGES 0 `)
	mustNotContain(t, got, "INBOX")
	mustNotContain(t, got, "misc")

	got = rc.ok(`NOTIFY SET STATUS (selected (MessageExpunge MessageNew FlagChange)) (mailboxes misc (MessageNew MessageExpunge)) (subtree Lists (MessageNew MessageExpunge FlagChange))`)
	mustContain(t, got, `* STATUS "misc" (`)
	// FlagChange asks for HIGHESTMODSEQ, as on Dovecot.
	mustContain(t, got, `* STATUS "Lists/Lemonade" (`, "HIGHESTMODSEQ ")

	got = rc.ok(`NOTIFY SET (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))`)
	mustNotContain(t, got, "* STATUS")
	rc.ok(`NOTIFY SET (inboxes (MessageNew)) (subscribed (MessageExpunge MessageNew)) (selected-delayed NONE)`)
	rc.ok(`NOTIFY NONE`)
	ts.deliver("alice", "misc", simpleMessage("after none", "x"))
	mustNotContain(t, rc.ok("NOOP"), "STATUS")
}

// TestNotifyTwoSessions: one session changes things, the other, which
// selected INBOX and follows its personal mailboxes, hears of each: after
// a command, and during IDLE.
func TestNotifyTwoSessions(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	watcher := ts.rawLogin("alice")
	changer := ts.rawLogin("alice")
	changer.ok("CREATE Work")
	watcher.ok("SELECT INBOX")
	watcher.ok(`NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))`)

	// A message for another mailbox: STATUS after the next command.
	if _, st := changer.appendRaw("Work", simpleMessage("work", "x")); !strings.HasPrefix(st, "OK") {
		t.Fatal(st)
	}
	got := watcher.ok("NOOP")
	mustContain(t, got, `* STATUS "Work" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY `, "UNSEEN 1", "HIGHESTMODSEQ ")

	// Flags and an expunge, during IDLE.
	changer.ok("SELECT Work")
	got = watcher.idleLines(500*time.Millisecond, func() {
		changer.ok(`STORE 1 +FLAGS (\Seen)`)
	})
	mustContain(t, got, `* STATUS "Work" (MESSAGES 1 `, "UNSEEN 0")
	got = watcher.idleLines(500*time.Millisecond, func() {
		changer.ok(`STORE 1 +FLAGS (\Deleted)`)
		changer.ok(`EXPUNGE`)
	})
	mustContain(t, got, `* STATUS "Work" (MESSAGES 0 `)
	changer.ok("UNSELECT")

	// The mailbox list: created, renamed, subscribed, unsubscribed,
	// deleted, each a LIST.
	got = watcher.idleLines(500*time.Millisecond, func() {
		changer.ok("CREATE Play")
		changer.ok("RENAME Play Games")
		changer.ok("SUBSCRIBE Games")
		changer.ok("UNSUBSCRIBE Games")
		changer.ok("DELETE Games")
	})
	want := []string{
		`* LIST () "/" "Play"`,
		`* LIST () "/" "Games" (OLDNAME ("Play"))`,
		`* LIST (\Subscribed) "/" "Games"`,
		`* LIST () "/" "Games"`,
		`* LIST (\NonExistent) "/" "Games"`,
	}
	var lists []string
	for _, l := range got {
		if strings.HasPrefix(l, "* LIST") {
			lists = append(lists, l)
		}
	}
	if strings.Join(lists, "\n") != strings.Join(want, "\n") {
		t.Errorf("LIST notifications:\n%s\nwant:\n%s", strings.Join(lists, "\n"), strings.Join(want, "\n"))
	}

	// The selected mailbox is told as before NOTIFY, never by STATUS.
	got = watcher.idleLines(500*time.Millisecond, func() {
		ts.deliver("alice", "INBOX", simpleMessage("inbox", "x"))
	})
	mustContain(t, got, "* 1 EXISTS")
	mustNotContain(t, got, "STATUS")
	// Nothing more, once told.
	mustNotContain(t, watcher.ok("NOOP"), "STATUS")
}

// TestNotifyIdleUnselected: with no mailbox selected, IDLE hears of the
// followed mailboxes (before NOTIFY it heard nothing at all there).
func TestNotifyIdleUnselected(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok(`NOTIFY SET (inboxes (MessageNew MessageExpunge))`)
	got := rc.idleLines(500*time.Millisecond, func() {
		ts.deliver("alice", "INBOX", simpleMessage("one", "x"))
		ts.deliver("alice", "Sent", simpleMessage("sent", "x")) // not an inbox
	})
	mustContain(t, got, `* STATUS INBOX (MESSAGES 1 UIDNEXT 2 `)
	mustNotContain(t, got, "Sent")
}

// TestNotifyEventFilters: a mailbox's group decides what it is told of
// (the most specific group wins), and events no group asks for are not
// sent.
func TestNotifyEventFilters(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok("CREATE Lists")
	rc.ok("CREATE Lists/Quiet")
	rc.ok(`NOTIFY SET (subtree Lists (MessageNew MessageExpunge)) (mailboxes Lists/Quiet NONE) (personal (MailboxName))`)
	ts.deliver("alice", "Lists", simpleMessage("a", "x"))
	ts.deliver("alice", "Lists/Quiet", simpleMessage("b", "x"))
	ts.deliver("alice", "Archive", simpleMessage("c", "x"))
	got := rc.ok("NOOP")
	mustContain(t, got, `* STATUS "Lists" (`)
	mustNotContain(t, got, "Quiet")
	mustNotContain(t, got, "Archive")
	// Flags are not asked for in Lists.
	rc.ok("SELECT Archive")
	rc.ok(`STORE 1 +FLAGS (\Flagged)`)
	rc.ok("UNSELECT")
	sel := ts.rawLogin("alice")
	sel.ok("SELECT Lists")
	sel.ok(`STORE 1 +FLAGS (\Flagged)`)
	mustNotContain(t, rc.ok("NOOP"), "STATUS")
	// MailboxName under PERSONAL, not for Lists/…: the SUBTREE group
	// covers those names more closely and does not ask for it.
	sel.ok("CREATE Lists/New")
	sel.ok("CREATE Other")
	got = rc.ok("NOOP")
	mustContain(t, got, `* LIST () "/" "Other"`)
	mustNotContain(t, got, "Lists/New")
}

// TestNotifySelectedMessageNewFetch: a SELECTED group's MessageNew with
// fetch attributes follows each new message's EXISTS with a FETCH of
// them (RFC 5465 5.2), after a command and during IDLE; BODY[] is read as
// BODY.PEEK[] (a notification sets no \Seen); the QRESYNC session still
// gets VANISHED for expunges.
func TestNotifySelectedMessageNewFetch(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("old", "x"))
	rc := ts.rawLogin("alice")
	rc.ok("ENABLE QRESYNC")
	rc.ok("SELECT INBOX")
	rc.ok(`NOTIFY SET (SELECTED (MessageNew (UID FLAGS BODY[HEADER.FIELDS (Subject)]) MessageExpunge))`)
	ts.deliver("alice", "INBOX", simpleMessage("first new", "x"))
	got := rc.ok("NOOP")
	mustContain(t, got, "* 2 EXISTS")
	line := mustContain(t, got, "* 2 FETCH (UID 2 FLAGS () MODSEQ (", `BODY[HEADER.FIELDS ("Subject")]`)
	if !strings.Contains(line, "Subject: first new") {
		t.Errorf("FETCH %q lacks the subject", line)
	}
	// Told once.
	mustNotContain(t, rc.ok("NOOP"), "FETCH")

	got = rc.idleLines(500*time.Millisecond, func() {
		ts.deliver("alice", "INBOX", simpleMessage("second new", "x"))
	})
	mustContain(t, got, "* 3 EXISTS")
	mustContain(t, got, "* 3 FETCH (UID 3 FLAGS () MODSEQ (", `BODY[HEADER.FIELDS ("Subject")]`, "second new")
	mustContain(t, rc.ok("FETCH 2:3 FLAGS"), `FLAGS () MODSEQ (`)

	other := ts.rawLogin("alice")
	other.ok("SELECT INBOX")
	other.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	other.ok("EXPUNGE")
	got = rc.ok("NOOP")
	mustContain(t, got, "* VANISHED 1")
	mustNotContain(t, got, "EXPUNGE")
}

// TestNotifySelectedDelayed: with SELECTED-DELAYED, an expunge waits
// during UID commands, which keep their message numbers, and comes with
// the next NOOP; with SELECTED it comes after the UID command.
func TestNotifySelectedDelayed(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 3)
	rc := ts.rawLogin("alice")
	other := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	other.ok("SELECT INBOX")
	rc.ok(`NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge))`)
	other.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	other.ok("EXPUNGE")
	mustNotContain(t, rc.ok("UID FETCH 1:* FLAGS"), "EXPUNGE")
	mustContain(t, rc.ok("NOOP"), "* 1 EXPUNGE")

	rc.ok(`NOTIFY SET (SELECTED (MessageNew MessageExpunge))`)
	other.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	other.ok("EXPUNGE")
	mustContain(t, rc.ok("UID FETCH 1:* FLAGS"), "* 1 EXPUNGE")
}

// TestNotifyRefused: what RFC 5465 forbids is BAD, events certmail cannot
// send (AnnotationChange: no ANNOTATE; unknown ones) are NO [BADEVENT]
// naming them, too many mailbox names are NO
// [NOTIFICATIONOVERFLOW]; a refused NOTIFY leaves the previous one on.
func TestNotifyRefused(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok(`NOTIFY SET (personal (MessageNew MessageExpunge))`)
	for _, line := range []string{
		`NOTIFY`,
		`NOTIFY SET`,
		`NOTIFY SET STATUS`,
		`NOTIFY GET`,
		`NOTIFY SET ()`,
		`NOTIFY SET (everything (MessageNew))`,
		`NOTIFY SET (personal)`,
		`NOTIFY SET (personal ())`,
		`NOTIFY SET (subtree (MessageNew))`,
		`NOTIFY SET (subtree () (MessageNew))`,
		`NOTIFY SET (selected (MessageNew))`,
		`NOTIFY SET (selected (MessageExpunge FlagChange)) (selected NONE)`,
		`NOTIFY SET (selected (FlagChange))`,
		`NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed NONE)`,
		`NOTIFY SET (selected (MessageExpunge (UID) MessageNew))`,
		`NOTIFY SET (selected (MessageNew (NOSUCHATT) MessageExpunge))`,
		`NOTIFY SET (selected (MessageNew (ALL) MessageExpunge))`,
		`NOTIFY SET (personal NONE) extra`,
	} {
		rejects(t, rc, line)
	}
	for _, c := range []struct{ line, want string }{
		{`NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange))`, "NO [BADEVENT (AnnotationChange)]"},
		{`NOTIFY SET (personal (MailboxMetadataChange ServerMetadataChange XFoo))`, "NO [BADEVENT (XFoo)]"},
	} {
		if st := rc.fail("NO", c.line); !strings.HasPrefix(st, c.want) {
			t.Errorf("%s: %q, want %s", c.line, st, c.want)
		}
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("box%d", i)
	}
	rc.fail("NO [NOTIFICATIONOVERFLOW]", `NOTIFY SET (mailboxes (`+strings.Join(many, " ")+`) (MessageNew))`)
	// The first NOTIFY still holds.
	ts.deliver("alice", "Sent", simpleMessage("x", "y"))
	mustContain(t, rc.ok("NOOP"), `* STATUS "Sent" (`)
	// Not before login.
	anon := ts.raw()
	anon.fail("BAD", `NOTIFY NONE`)
}

// TestNotifyOverflow: a client that does not read its events makes the
// server keep at most notifyMaxPending notes; past that it is told OK
// [NOTIFICATIONOVERFLOW] and NOTIFY is off (RFC 5465 5.8), until it sets
// it again.
func TestNotifyOverflow(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok(`NOTIFY SET (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))`)
	// 994 mailboxes (the account's limit of 1,000 with the six it has)
	// and seven subscriptions: 1,001 LIST notes.
	if err := ts.store.Update(func(tx *mailbox.Tx) error {
		for i := 0; i < 994; i++ {
			if _, err := tx.CreateMailbox("alice", mailbox.NewMailbox{Name: fmt.Sprintf("m%d", i)}); err != nil {
				return err
			}
		}
		for i := 0; i < 7; i++ {
			if err := tx.SetSubscribed("alice", fmt.Sprintf("m%d", i), true); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := rc.ok("NOOP")
	mustContain(t, got, "* OK [NOTIFICATIONOVERFLOW]")
	mustNotContain(t, got, "* LIST")
	ts.deliver("alice", "INBOX", simpleMessage("x", "y"))
	mustNotContain(t, rc.ok("NOOP"), "STATUS")
	rc.ok(`NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))`)
	ts.deliver("alice", "INBOX", simpleMessage("x", "y"))
	mustContain(t, rc.ok("NOOP"), `* STATUS INBOX (MESSAGES 2 `)

	// 1,000 notes are kept: one per mailbox, however many messages.
	names := []string{"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
	for i := 0; i < 994; i++ {
		names = append(names, fmt.Sprintf("m%d", i))
	}
	for round := 0; round < 2; round++ {
		for i := 0; i < len(names); i += 100 {
			if err := ts.store.Update(func(tx *mailbox.Tx) error {
				for _, name := range names[i:min(i+100, len(names))] {
					if _, err := tx.Append("alice", name, []byte(simpleMessage("x", "y")), mailbox.AppendOptions{}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got = rc.ok("NOOP")
	mustNotContain(t, got, "NOTIFICATIONOVERFLOW")
	if n := len(grep(got, "* STATUS ")); n != 1000 {
		t.Errorf("%d STATUS responses, want 1000", n)
	}
}

// TestNotifyConcurrent: sessions idling with NOTIFY while four writers
// append to two mailboxes each end with a STATUS that has every message:
// the last STATUS a session is sent is never older than the last change.
func TestNotifyConcurrent(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	const watchers, writers, each = 6, 4, 26
	var ws []*rawClient
	for i := 0; i < watchers; i++ {
		rc := ts.rawLogin("alice")
		if i%2 == 1 {
			rc.ok("SELECT Trash")
		}
		rc.ok(`NOTIFY SET (personal (MessageNew MessageExpunge FlagChange))`)
		tag := rc.nextTag()
		rc.write(tag + " IDLE\r\n")
		if l := rc.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q", l)
		}
		ws = append(ws, rc)
	}
	done := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				box := []string{"Archive", "Junk"}[i%2]
				if err := ts.store.Update(func(tx *mailbox.Tx) error {
					_, err := tx.Append("alice", box, []byte(simpleMessage(fmt.Sprintf("m%d", i), "x")), mailbox.AppendOptions{})
					return err
				}); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for w := 0; w < writers; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	want := fmt.Sprintf("MESSAGES %d ", writers*each/2)
	for i, rc := range ws {
		last := map[string]string{}
		for {
			l, err := rc.tryReadLine(time.Second)
			if err != nil {
				break
			}
			for _, box := range []string{"Archive", "Junk"} {
				if strings.HasPrefix(l, `* STATUS "`+box+`" `) {
					last[box] = l
				}
			}
		}
		for _, box := range []string{"Archive", "Junk"} {
			if !strings.Contains(last[box], want) {
				t.Errorf("watcher %d: last STATUS of %s %q, want %s", i, box, last[box], want)
			}
		}
		rc.write("DONE\r\n")
	}
}

// TestNotifyMetadata: with METADATA (RFC 5464), MailboxMetadataChange
// and ServerMetadataChange bring an unsolicited METADATA naming the entry
// that changed (RFC 5465 5.6, RFC 5464 4.4.2): for the selected mailbox
// by its SELECTED group, for others by the group that covers them, for
// server entries whatever the group.
func TestNotifyMetadata(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	other := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	rc.ok(`NOTIFY SET (selected (MessageNew MessageExpunge MailboxMetadataChange)) (mailboxes Sent (MailboxMetadataChange)) (mailboxes Drafts (MessageNew)) (inboxes (ServerMetadataChange))`)
	other.ok(`SETMETADATA INBOX (/private/comment "mine")`)
	other.ok(`SETMETADATA Sent (/shared/comment "sent mail")`)
	other.ok(`SETMETADATA Drafts (/shared/comment "not followed")`)
	other.ok(`SETMETADATA "" (/private/vendor/example/x "the server")`)
	got := rc.ok("NOOP")
	want := []string{
		`* METADATA INBOX "/private/comment"`,
		`* METADATA "Sent" "/shared/comment"`,
		`* METADATA "" "/private/vendor/example/x"`,
	}
	var meta []string
	for _, l := range got {
		if strings.HasPrefix(l, "* METADATA") {
			meta = append(meta, l)
		}
	}
	if strings.Join(meta, "\n") != strings.Join(want, "\n") {
		t.Errorf("METADATA notifications:\n%s\nwant:\n%s", strings.Join(meta, "\n"), strings.Join(want, "\n"))
	}
	// Removing an entry is a change too; during IDLE as well.
	got = rc.idleLines(500*time.Millisecond, func() {
		other.ok(`SETMETADATA Sent (/shared/comment NIL)`)
	})
	mustContain(t, got, `* METADATA "Sent" "/shared/comment"`)
}
