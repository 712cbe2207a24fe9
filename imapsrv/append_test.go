package imapsrv_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// appendRaw sends APPEND with a synchronizing literal, waiting for the
// continuation request as a careful client does, and returns the status.
func (rc *rawClient) appendRaw(args, msg string) (untagged []string, status string) {
	rc.t.Helper()
	tag := rc.nextTag()
	rc.write(fmt.Sprintf("%s APPEND %s {%d}\r\n", tag, args, len(msg)))
	l := rc.readLine()
	if !strings.HasPrefix(l, "+") {
		// Refused before the literal.
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return nil, rest
		}
		rc.t.Fatalf("APPEND: want a continuation request, got %q", l)
	}
	rc.write(msg + "\r\n")
	return rc.readUntilTagged(tag)
}

func TestAppend(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	// Plain APPEND: APPENDUID with the mailbox's UIDVALIDITY and the UID.
	msg := simpleMessage("appended", "hello")
	_, st := rc.appendRaw("INBOX", msg)
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND: %q", st)
	}
	uvs := fmt.Sprintf("[APPENDUID %d 1]", statusUIDValidity(t, rc, "INBOX"))
	if !strings.Contains(st, uvs) {
		t.Errorf("APPEND: %q lacks %s", st, uvs)
	}

	// Flags and internal date, as Thunderbird saves a draft.
	_, st = rc.appendRaw(`Drafts (\Seen \Draft $Work) "05-Mar-2024 09:30:00 +0100"`, msg)
	if !strings.HasPrefix(st, "OK [APPENDUID ") {
		t.Fatalf("APPEND with flags and date: %q", st)
	}
	rc.ok(`SELECT Drafts`)
	f := rc.ok(`FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])`)
	l := mustContain(t, f, "* 1 FETCH")
	for _, want := range []string{`\Seen`, `\Draft`, `$Work`, `INTERNALDATE " 5-Mar-2024 09:30:00 +0100"`,
		fmt.Sprintf("RFC822.SIZE %d", len(msg))} {
		if !strings.Contains(l, want) {
			t.Errorf("FETCH after APPEND: %q lacks %q", l, want)
		}
	}
	// Stored byte for byte.
	if !strings.Contains(l, msg) {
		t.Errorf("BODY[] differs from what was appended: %q", l)
	}
	if strings.Contains(l, `\Recent`) {
		t.Errorf("\\Recent stored as a flag: %q", l)
	}
	rc.ok(`UNSELECT`)

	// LITERAL+: {n+} sends the message without waiting.
	msg2 := simpleMessage("nonsync", "sent without waiting")
	tag := rc.nextTag()
	rc.write(fmt.Sprintf("%s APPEND INBOX (\\Flagged) {%d+}\r\n%s\r\n", tag, len(msg2), msg2))
	if _, st := rc.readUntilTagged(tag); !strings.HasPrefix(st, "OK [APPENDUID ") {
		t.Fatalf("APPEND {n+}: %q", st)
	}
	// Lower case, and pipelined with the next command.
	tag = rc.nextTag()
	rc.write(fmt.Sprintf("%s append inbox {%d+}\r\n%s\r\nx1 NOOP\r\n", tag, len(msg2), msg2))
	if _, st := rc.readUntilTagged(tag); !strings.HasPrefix(st, "OK") {
		t.Fatalf("append {n+}: %q", st)
	}
	if _, st := rc.readUntilTagged("x1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("NOOP after append: %q", st)
	}
	mustContain(t, rc.ok(`STATUS INBOX (MESSAGES UIDNEXT)`), "MESSAGES 3", "UIDNEXT 4")

	// A missing mailbox: NO [TRYCREATE].
	_, st = rc.appendRaw("Nowhere", msg)
	if !strings.HasPrefix(st, "NO [TRYCREATE]") {
		t.Errorf("APPEND to a missing mailbox: %q", st)
	}
	rc.alive()

	// Bad flags or dates are BAD, and the connection survives.
	rc.write("b1 APPEND INBOX (\\Seen \"quoted\") {5}\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "b1 BAD") {
		t.Errorf("APPEND with a bad flag: %q", l)
	}
	rc.alive()
	// A bad date is BAD and says what is wrong (go-imap answered NO
	// [SERVERBUG]; third_party/go-imap is patched).
	rc.write("b2 APPEND INBOX \"32-Foo-2024 99:99:99 +0000\" {5}\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "b2 BAD") || !strings.Contains(l, "invalid date-time") {
		t.Errorf("APPEND with a bad date: %q", l)
	}
	rc.alive()

	// A message with NUL bytes comes only as a literal8 (RFC 3516 4.4,
	// binary.go), and NUL bytes in its header fields cannot be stored in
	// a form every client can read.
	bin := readFixture(t, "binary.eml")
	if _, st := rc.appendRaw("Archive", bin); !strings.HasPrefix(st, "BAD") {
		t.Errorf("APPEND binary.eml (NUL bytes) in a plain literal: %q, want BAD", st)
	}
	if _, st := rc.cmd(fmt.Sprintf("APPEND Archive ~{%d+}\r\n%s", len(bin), bin)); !strings.HasPrefix(st, "NO [UNKNOWN-CTE]") {
		t.Errorf("APPEND binary.eml (NUL bytes in the header) as a literal8: %q, want NO [UNKNOWN-CTE]", st)
	}
	// Fixtures, 8-bit and broken ones included, are stored as given.
	for _, name := range []string{"multipart.eml", "encoded.eml", "malformed.eml", "headerless.eml", "lf-only.eml"} {
		raw := readFixture(t, name)
		_, st := rc.appendRaw("Archive", raw)
		if !strings.HasPrefix(st, "OK") {
			t.Errorf("APPEND %s: %q", name, st)
		}
	}
	rc.ok(`EXAMINE Archive`)
	for i, name := range []string{"multipart.eml", "encoded.eml", "malformed.eml", "headerless.eml", "lf-only.eml"} {
		raw := readFixture(t, name)
		got := rc.ok(fmt.Sprintf(`FETCH %d (BODY.PEEK[])`, i+1))
		want := fmt.Sprintf("BODY[] {%d}\r\n%s)", len(raw), raw)
		if len(got) != 1 || !strings.HasSuffix(got[0], want) {
			t.Errorf("%s not stored byte for byte", name)
		}
	}

	// The go-imap client, with flags and a date.
	c := ts.client("alice")
	date := time.Date(2023, 12, 24, 18, 0, 0, 0, time.FixedZone("", 3600))
	d := c.appendMsg("Sent", msg, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: date})
	if d.UID != 1 || d.UIDValidity == 0 {
		t.Errorf("imapclient APPEND: %+v", d)
	}
	c.selectBox("Sent")
	bufs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, InternalDate: true}).Collect()
	if err != nil || len(bufs) != 1 {
		t.Fatalf("FETCH: %v %v", bufs, err)
	}
	// \Recent too: this session is the first to select Sent since the
	// message arrived (RFC 3501 2.3.2).
	if !bufs[0].InternalDate.Equal(date) || flagString(bufs[0].Flags) != `(\Seen)` {
		t.Errorf("imapclient FETCH after APPEND: %v %v", bufs[0].InternalDate, bufs[0].Flags)
	}
}

func statusUIDValidity(t *testing.T, rc *rawClient, mbox string) uint32 {
	t.Helper()
	l := mustContain(t, rc.ok(`STATUS `+mbox+` (UIDVALIDITY)`), "UIDVALIDITY")
	var n uint32
	i := strings.Index(l, "UIDVALIDITY ")
	fmt.Sscanf(l[i+len("UIDVALIDITY "):], "%d", &n)
	return n
}

func TestAppendLimit(t *testing.T) {
	const limit = 1000
	ts := newTestServer(t, withAppendLimit(limit))
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	mustContain(t, rc.ok("CAPABILITY"), fmt.Sprintf("APPENDLIMIT=%d", limit))

	// Too big: NO [TOOBIG] right after the literal's size, with no
	// continuation request, so the client never sends the message.
	big := strings.Repeat("x", limit+1)
	tag := rc.nextTag()
	rc.write(fmt.Sprintf("%s APPEND INBOX {%d}\r\n", tag, len(big)))
	l := rc.readLine()
	if !strings.HasPrefix(l, tag+" NO [TOOBIG]") {
		t.Fatalf("oversized APPEND: %q", l)
	}
	rc.alive()
	mustContain(t, rc.ok(`STATUS INBOX (MESSAGES)`), "MESSAGES 0")

	// Exactly the limit is fine.
	ok := strings.Repeat("y", limit)
	if _, st := rc.appendRaw("INBOX", ok); !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND of exactly the limit: %q", st)
	}
	// The go-imap client sees the error.
	c := ts.client("alice")
	cmd := c.Append("INBOX", int64(len(big)), nil)
	cmd.Write([]byte(big))
	cmd.Close()
	if _, err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "TOOBIG") {
		t.Errorf("imapclient oversized APPEND: %v", err)
	}
	// STATUS APPENDLIMIT is not asked for by clients but must not break.
	rc.alive()
}
