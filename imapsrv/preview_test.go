package imapsrv_test

import (
	"strings"
	"testing"

	"certmail/imapsrv"
	"certmail/mailbox"
)

const htmlMessage = "From: Alice <alice@example.org>\r\n" +
	"Subject: html\r\n" +
	"Content-Type: multipart/alternative; boundary=xyz\r\n" +
	"\r\n" +
	"--xyz\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<html><head><style>p { color: red }</style></head>\r\n" +
	"<body><p>Dear&nbsp;Bob,</p>\r\n\r\n<p>the   <b>minutes</b> &amp; agenda</p></body></html>\r\n" +
	"--xyz--\r\n"

// TestPreview replays RFC 8970 section 5's example: PREVIEW for a
// message with text, one with none (""), PREVIEW (LAZY) NIL for a
// message whose preview is not at hand and its text once asked for
// without LAZY; PREVIEW is advertised, HTML is stripped, white space
// collapsed, 256 characters at most.
func TestPreview(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("plain", "Hello Bob,\r\n\r\n   this is the  first line."))
	ts.deliver("alice", "INBOX", htmlMessage)
	ts.deliver("alice", "INBOX", "Subject: empty\r\nContent-Type: image/gif\r\n\r\nGIF89a\r\n")
	old := simpleMessage("old", "Stored before previews.")
	if err := ts.store.Update(func(tx *mailbox.Tx) error {
		_, err := tx.Append("alice", "INBOX", []byte(old), mailbox.AppendOptions{Summary: imapsrv.SummarizeWithoutPreview([]byte(old))})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ts.deliver("alice", "INBOX", simpleMessage("long", strings.Repeat("0123456789 ", 40)))

	rc := ts.rawLogin("alice")
	if !capsOf(t, rc.ok("CAPABILITY"))["PREVIEW"] {
		t.Fatal("PREVIEW not advertised")
	}
	rc.ok("SELECT INBOX")
	lines := rc.ok("FETCH 1:4 (PREVIEW (LAZY))")
	mustContain(t, lines, "* 1 FETCH (", `PREVIEW "Hello Bob, this is the first line.")`)
	mustContain(t, lines, "* 2 FETCH (", `PREVIEW "Dear Bob, the minutes & agenda")`)
	mustContain(t, lines, "* 3 FETCH (", `PREVIEW "")`)
	mustContain(t, lines, "* 4 FETCH (", `PREVIEW NIL)`)
	mustContain(t, rc.ok("FETCH 4 (PREVIEW)"), "* 4 FETCH (", `PREVIEW "Stored before previews.")`)
	// Computed once, kept: LAZY now has it.
	mustContain(t, rc.ok("FETCH 4 PREVIEW (LAZY)"), "* 4 FETCH (", `PREVIEW "Stored before previews.")`)
	long := strings.TrimSpace(strings.Repeat("0123456789 ", 40))[:256]
	mustContain(t, rc.ok("FETCH 5 PREVIEW"), "* 5 FETCH (", `PREVIEW "`+long+`")`)
	// Among other items, in any place of the list.
	mustContain(t, rc.ok("UID FETCH 1 (PREVIEW (LAZY) FLAGS)"), `* 1 FETCH (UID 1 FLAGS () PREVIEW "Hello Bob, this is the first line.")`)
	mustContain(t, rc.ok("FETCH 1 (FLAGS PREVIEW)"), `PREVIEW "Hello Bob, this is the first line."`)
	mustContain(t, rc.ok("FETCH 1 (PREVIEW (lazy)) (CHANGEDSINCE 1)"), `PREVIEW "Hello Bob`)
	// PREVIEW does not set \Seen (it is not a body section).
	mustContain(t, rc.ok("FETCH 1 FLAGS"), `FLAGS ()`)
	for _, bad := range []string{
		"FETCH 1 (PREVIEW (FOO))",
		"FETCH 1 PREVIEW (FOO)",
		"FETCH 1 (PREVIEW (LAZY)",
		"FETCH 1 (PREVIEW (LAZY) (LAZY))",
		"FETCH 1 (FLAGS) (LAZY)",
	} {
		rejects(t, rc, bad)
	}
}

// TestPreviewNonASCII: a preview with characters outside ASCII reaches a
// client that has not enabled UTF8=ACCEPT as a literal.
func TestPreviewNonASCII(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", "Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"+
		"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe aus K=F6ln\r\n")
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	mustContain(t, rc.ok("FETCH 1 PREVIEW"), "PREVIEW {17}\r\nGrüße aus Köln)")
}

// TestPreviewRestart: the preview computed at delivery is kept with the
// message: after a restart PREVIEW (LAZY) has it.
func TestPreviewRestart(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("kept", "Survives a restart."))
	ts.restart()
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	mustContain(t, rc.ok("FETCH 1 (PREVIEW (LAZY))"), "* 1 FETCH (", `PREVIEW "Survives a restart.")`)
}
