package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The messages of RFC 3502 section 6.3.11's example.
const (
	rfc3502Msg1 = "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n" +
		"From: Fred Foobar <foobar@Blurdybloop.example.COM>\r\n" +
		"Subject: afternoon meeting\r\n" +
		"To: mooch@owatagu.example.net\r\n" +
		"Message-Id: <B27397-0100000@Blurdybloop.example.COM>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n" +
		"\r\n" +
		"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
	rfc3502Msg2 = "Date: Mon, 7 Feb 1994 22:43:04 -0800 (PST)\r\n" +
		"From: Joe Mooch <mooch@OWaTaGu.example.net>\r\n" +
		"Subject: Re: afternoon meeting\r\n" +
		"To: foobar@blurdybloop.example.com\r\n" +
		"Message-Id: <a0434793874930@OWaTaGu.example.net>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n" +
		"\r\n" +
		"3:30 is fine with me.\r\n"
	rfc3502Msg3 = "Date: Mon, 7 Feb 2000 22:43:04 -0800 (PST)\r\n" +
		"From: Fred Foobar <fred@example.com>\r\n" +
		"Subject: hmm...\r\n"
)

// TestMultiAppendRFC3502 replays RFC 3502 section 6.3.11's example with
// synchronizing literals, as written: two messages in one APPEND, each
// with its flags and date; a mailbox that does not exist refused with
// TRYCREATE before the first literal is sent; a batch whose second
// literal is over the limit refused before that literal, with nothing of
// the first stored. The tagged OK names both UIDs (RFC 4315 APPENDUID).
func TestMultiAppendRFC3502(t *testing.T) {
	ts := newTestServer(t, withAppendLimit(30000))
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	mustContain(t, rc.ok("CAPABILITY"), " MULTIAPPEND")
	rc.ok("CREATE saved-messages")
	rc.ok("CREATE test")

	cont := func() {
		t.Helper()
		if l := rc.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("want a continuation request, got %q", l)
		}
	}
	rc.write(fmt.Sprintf("A003 APPEND saved-messages (\\Seen) {%d}\r\n", len(rfc3502Msg1)))
	cont()
	rc.write(rfc3502Msg1 + fmt.Sprintf(" (\\Seen) \" 7-Feb-1994 22:43:04 -0800\" {%d}\r\n", len(rfc3502Msg2)))
	cont()
	rc.write(rfc3502Msg2 + "\r\n")
	_, st := rc.readUntilTagged("A003")
	uv := statusUIDValidity(t, rc, "saved-messages")
	if want := fmt.Sprintf("OK [APPENDUID %d 1:2]", uv); !strings.HasPrefix(st, want) {
		t.Fatalf("A003: %q, want %q", st, want)
	}

	rc.write("A004 APPEND bogusname (\\Flagged) {1023}\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "A004 NO [TRYCREATE]") {
		t.Fatalf("A004: %q, want NO [TRYCREATE] before the literal", l)
	}

	rc.write(fmt.Sprintf("A005 APPEND test (\\Flagged) {%d}\r\n", len(rfc3502Msg3)))
	cont()
	rc.write(rfc3502Msg3 + " {35403}\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "A005 NO [TOOBIG]") {
		t.Fatalf("A005: %q, want NO [TOOBIG] before the second literal", l)
	}
	rc.alive()
	mustContain(t, rc.ok("STATUS test (MESSAGES UIDNEXT)"), "(MESSAGES 0 UIDNEXT 1)")

	rc.ok("EXAMINE saved-messages")
	l := rc.ok("FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])")
	if len(l) != 2 {
		t.Fatalf("FETCH: %q", l)
	}
	mustContain(t, l[:1], `\Seen`, rfc3502Msg1)
	mustContain(t, l[1:], `\Seen`, `INTERNALDATE " 7-Feb-1994 22:43:04 -0800"`, rfc3502Msg2)
}

// TestMultiAppendAtomic: a batch with one bad message stores nothing. No
// session sees anything of it, no UID or MODSEQ is used up, and the
// change log has nothing to report (RFC 3502: "all or none").
func TestMultiAppendAtomic(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("before", "x"))
	rc := ts.rawLogin("alice")
	watcher := ts.rawLogin("alice")
	watcher.ok("ENABLE QRESYNC")
	watcher.ok("SELECT INBOX")
	before := rc.ok("STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ SIZE)")

	good := simpleMessage("good", "fine")
	bad := "Subject: nul\r\n\r\na\x00b\r\n"
	for _, c := range []struct{ name, cmd, want string }{
		{"NUL in the third message", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s",
			len(good), good, len(good), good, len(bad), bad), "BAD"},
		{"NUL in the first", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s (\\Seen) {%d+}\r\n%s",
			len(bad), bad, len(good), good), "BAD"},
		{"a bad flag in the second", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s (\"quoted\") {%d+}\r\n%s",
			len(good), good, len(good), good), "BAD"},
		{"a bad date in the second", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s \"32-Foo-2024 00:00:00 +0000\" {%d+}\r\n%s",
			len(good), good, len(good), good), "BAD"},
	} {
		// Each on its own connection: after a syntax error in the
		// middle, the literal guard closes the connection rather than
		// read the next literal's data as commands.
		c1 := ts.rawLogin("alice")
		if _, st := c1.cmd(c.cmd); !strings.HasPrefix(st, c.want) {
			t.Errorf("%s: %q, want %s", c.name, st, c.want)
		}
	}
	if after := rc.ok("STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ SIZE)"); strings.Join(after, "") != strings.Join(before, "") {
		t.Errorf("a refused batch changed the mailbox: %q, was %q", after, before)
	}
	if l := watcher.ok("NOOP"); len(l) != 0 {
		t.Errorf("another session heard of a refused batch: %q", l)
	}
	if l := watcher.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"); len(l) > 1 {
		t.Errorf("the change log holds a refused batch: %q", l)
	}

	// A batch that works: the other session hears of all of it at once.
	if _, st := rc.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s (\\Flagged) {%d+}\r\n%s", len(good), good, len(good), good)); !strings.HasPrefix(st, "OK [APPENDUID ") || !strings.Contains(st, " 2:3]") {
		t.Fatalf("APPEND of two: %q", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := watcher.ok("NOOP")
		if len(l) > 0 {
			mustContain(t, l, "* 3 EXISTS")
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other session never heard of the batch")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMultiAppendQuota: the quota (RFC 9208) counts the whole batch: a
// batch that would cross a limit is refused whole with OVERQUOTA, even
// though its first messages would fit.
func TestMultiAppendQuota(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	storage, messages := int64(1<<20), int64(3)
	if err := ts.store.SetQuota("alice", &storage, &messages); err != nil {
		t.Fatal(err)
	}
	ts.deliver("alice", "INBOX", simpleMessage("one", "x"))
	rc := ts.rawLogin("alice")
	m := simpleMessage("batch", "y")
	three := fmt.Sprintf("APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s", len(m), m, len(m), m, len(m), m)
	if _, st := rc.cmd(three); !strings.HasPrefix(st, "NO [OVERQUOTA]") {
		t.Fatalf("a batch of 3 with room for 2: %q, want NO [OVERQUOTA]", st)
	}
	mustContain(t, rc.ok("STATUS INBOX (MESSAGES)"), "(MESSAGES 1)")
	mustContain(t, rc.ok("GETQUOTAROOT INBOX"), "MESSAGE 1 3")
	two := fmt.Sprintf("APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(m), m, len(m), m)
	if _, st := rc.cmd(two); !strings.HasPrefix(st, "OK [APPENDUID ") {
		t.Fatalf("a batch of 2 with room for 2: %q", st)
	}
	mustContain(t, rc.ok("GETQUOTAROOT INBOX"), "MESSAGE 3 3")

	// The storage limit, by bytes, the same way.
	big := simpleMessage("big", strings.Repeat("z", 400<<10))
	storage, messages = int64(1<<20), int64(0)
	if err := ts.store.SetQuota("alice", &storage, &messages); err != nil {
		t.Fatal(err)
	}
	if _, st := rc.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s", len(big), big, len(big), big, len(big), big)); !strings.HasPrefix(st, "NO [OVERQUOTA]") {
		t.Fatalf("a batch of 1.2 MiB under 1 MiB: %q", st)
	}
	mustContain(t, rc.ok("STATUS INBOX (MESSAGES)"), "(MESSAGES 3)")
}

// TestMultiAppendLimit: the append limit bounds all of one APPEND's data
// together, and the messages of a batch in a hook's mailbox are refused.
func TestMultiAppendLimit(t *testing.T) {
	ts := newTestServer(t, withAppendLimit(1000))
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	m := simpleMessage("half", strings.Repeat("h", 500))
	tag := rc.nextTag()
	rc.write(fmt.Sprintf("%s APPEND INBOX {%d}\r\n", tag, len(m)))
	if l := rc.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("first literal: %q", l)
	}
	rc.write(fmt.Sprintf("%s {%d}\r\n", m, len(m)))
	if l := rc.readLine(); !strings.HasPrefix(l, tag+" NO [TOOBIG]") {
		t.Fatalf("second literal over the command's limit: %q", l)
	}
	rc.alive()
	mustContain(t, rc.ok("STATUS INBOX (MESSAGES)"), "(MESSAGES 0)")
	// Malformed batches are BAD.
	for _, line := range []string{"APPEND INBOX", "APPEND INBOX (\\Seen)", `APPEND INBOX "01-Jan-2020 00:00:00 +0000"`} {
		rejects(t, rc, line)
	}
}
