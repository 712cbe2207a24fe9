package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"
)

// The draft of RFC 4469 section 4's example: a multipart message whose
// header, first part's MIME header and first part the client reuses.
const (
	rfc4469Boundary = "------------030308070208000400050907"
	rfc4469Draft    = "Message-ID: <419399E1.6000505@caernarvon.example.net>\r\n" +
		"Date: Thu, 12 Nov 2004 16:57:05 +0000\r\n" +
		"From: Thomas Cromwell <thomas@caernarvon.example.net>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"To: Henry Tudor <henry@tudor.example.net>\r\n" +
		"Subject: Dissolution of the monasteries\r\n" +
		"Content-Type: multipart/mixed;\r\n" +
		" boundary=\"" + rfc4469Boundary + "\"\r\n" +
		"\r\n" +
		"This is a multi-part message in MIME format.\r\n" +
		"--" + rfc4469Boundary + "\r\n" +
		"Content-Type: text/plain; charset=us-ascii; format=flowed\r\n" +
		"Content-Transfer-Encoding: 7bit\r\n" +
		"\r\n" +
		"Here is my list of monasteries to dissolve.\r\n" +
		"--" + rfc4469Boundary + "--\r\n"
	rfc4469Forward = "From: someone@example.org\r\nSubject: the list\r\n\r\nAbbeys, priories.\r\n"
)

// TestCatenateRFC4469 replays RFC 4469 section 4's examples, with
// synchronizing literals: a message made of a draft's header, its first
// part's MIME header and body, and a whole second message, between TEXT
// boundaries; then the same with the second message expunged, refused
// with BADURL naming that URL, and nothing stored.
func TestCatenateRFC4469(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "Drafts", rfc4469Draft)
	ts.deliver("alice", "Drafts", rfc4469Forward)
	rc := ts.rawLogin("alice")
	mustContain(t, rc.ok("CAPABILITY"), " CATENATE")
	uv := statusUIDValidity(t, rc, "Drafts")
	url := func(rest string) string { return fmt.Sprintf(`"/Drafts;UIDVALIDITY=%d/%s"`, uv, rest) }
	sep := "\r\n--" + rfc4469Boundary + "\r\n"
	end := "\r\n--" + rfc4469Boundary + "--\r\n"
	run := func(tag, forwardUID string) string {
		t.Helper()
		rc.write(fmt.Sprintf("%s APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL %s TEXT {%d}\r\n",
			tag, url(";UID=1/;section=HEADER"), len(sep)))
		if l := rc.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("want a continuation request, got %q", l)
		}
		rc.write(fmt.Sprintf("%s URL %s URL %s TEXT {%d}\r\n", sep, url(";UID=1/;section=1.MIME"), url(";UID=1/;section=1"), len(sep)))
		if l := rc.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("want a continuation request, got %q", l)
		}
		rc.write(fmt.Sprintf("%s URL %s TEXT {%d}\r\n", sep, url(";UID="+forwardUID), len(end)))
		if l := rc.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("want a continuation request, got %q", l)
		}
		rc.write(end + ")\r\n")
		_, st := rc.readUntilTagged(tag)
		return st
	}
	if st := run("A003", "2"); !strings.HasPrefix(st, fmt.Sprintf("OK [APPENDUID %d 3]", uv)) {
		t.Fatalf("A003: %q", st)
	}
	header := rfc4469Draft[:strings.Index(rfc4469Draft, "\r\n\r\n")+4]
	want := header + sep +
		"Content-Type: text/plain; charset=us-ascii; format=flowed\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
		"Here is my list of monasteries to dissolve." + sep + rfc4469Forward + end
	rc.ok("SELECT Drafts")
	mustContain(t, rc.ok("FETCH 3 (FLAGS BODY.PEEK[])"), `\Seen`, `\Draft`, "$MDNSent", fmt.Sprintf("BODY[] {%d}\r\n%s)", len(want), want))

	// The second example: message 2 is gone.
	rc.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	rc.ok("EXPUNGE")
	st := run("A004", "2")
	if want := fmt.Sprintf("NO [BADURL /Drafts;UIDVALIDITY=%d/;UID=2]", uv); !strings.HasPrefix(st, want) {
		t.Fatalf("A004: %q, want %q", st, want)
	}
	mustContain(t, rc.ok("STATUS Drafts (MESSAGES UIDNEXT)"), "(MESSAGES 2 UIDNEXT 4)")
}

// TestCatenateURLs: the URL forms RFC 4469 section 5 allows (RFC 5092:
// absolute, network-path, absolute-path, relative to the selected
// mailbox), sections and partial ranges; and what BADURL refuses. Only
// the session's own mailboxes are reachable.
func TestCatenateURLs(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.addUser("bob")
	msg := "From: a@example.org\r\nSubject: source\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n" +
		"--x\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n" +
		"--x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nc2Vjb25k\r\n--x--\r\n"
	ts.deliver("alice", "INBOX", msg)
	ts.deliver("bob", "INBOX", "Subject: bob's secret\r\n\r\nbob only\r\n")
	rc := ts.rawLogin("alice")
	rc.ok("CREATE \"My Box\"")
	ts.deliver("alice", "My Box", "Subject: in my box\r\n\r\nboxed\r\n")
	uv := statusUIDValidity(t, rc, "INBOX")

	appendURL := func(u string) (string, string) {
		t.Helper()
		_, st := rc.cmd(fmt.Sprintf(`APPEND Drafts CATENATE (URL "%s")`, u))
		if !strings.HasPrefix(st, "OK [APPENDUID ") {
			return st, ""
		}
		var v, uid uint32
		fmt.Sscanf(st, "OK [APPENDUID %d %d]", &v, &uid)
		rc.ok("EXAMINE Drafts")
		l := rc.ok(fmt.Sprintf("UID FETCH %d (BODY.PEEK[])", uid))
		rc.ok("UNSELECT")
		if len(l) != 1 {
			t.Fatalf("FETCH: %q", l)
		}
		_, body, _ := strings.Cut(l[0], "}\r\n")
		return st, strings.TrimSuffix(body, ")")
	}
	header := msg[:strings.Index(msg, "\r\n\r\n")+4]
	for _, c := range []struct{ url, want string }{
		{"imap://alice@localhost/INBOX/;UID=1", msg},
		{"imap://ALICE;AUTH=*@localhost:143/INBOX/;UID=1", msg},
		{fmt.Sprintf("imap://localhost/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=HEADER", uv), header},
		{"//localhost/inbox/;uid=1/;section=1", "first part"},
		{"/INBOX/;UID=1/;SECTION=2", "c2Vjb25k"}, // BODY[2]: not decoded
		{"/INBOX/;UID=1/;SECTION=2.MIME", "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"},
		{"/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(Subject)", "Subject: source\r\n\r\n"},
		{"/INBOX/;UID=1/;SECTION=1/;PARTIAL=6.4", "part"},
		{"/INBOX/;UID=1/;PARTIAL=6", msg[6:]},
		{"/INBOX/;UID=1/;PARTIAL=100000.1", ""},
		{"/My%20Box/;UID=1/;SECTION=TEXT", "boxed\r\n"},
	} {
		st, got := appendURL(c.url)
		if !strings.HasPrefix(st, "OK") || got != c.want {
			t.Errorf("URL %s: %q %q, want %q", c.url, st, got, c.want)
		}
	}
	// Relative to the selected mailbox.
	rc.ok("SELECT INBOX")
	if _, st := rc.cmd(`APPEND Drafts CATENATE (URL ";UID=1/;SECTION=1" TEXT {2+}` + "\r\n!!)"); !strings.HasPrefix(st, "OK") {
		t.Errorf("relative URL in the selected state: %q", st)
	}
	rc.ok("UNSELECT")
	for _, u := range []string{
		";UID=1",                            // relative, nothing selected
		"imap://bob@localhost/INBOX/;UID=1", // another user
		"/Nowhere/;UID=1",
		"/INBOX/;UID=99",
		fmt.Sprintf("/INBOX;UIDVALIDITY=%d/;UID=1", uv+1),
		"/INBOX",                       // no message
		"/INBOX/;UID=0",                // no such UID
		"/INBOX/;UID=1/;SECTION=1.FOO", // no such section text
		"/INBOX/;UID=1/;SECTION=",
		"/INBOX/;UID=1/;PARTIAL=1.0",
		"/INBOX/;UID=1/;EXPIRE=2030-01-01T00:00:00Z/;URLAUTH=anonymous:internal:0123", // URLAUTH
		"http://localhost/INBOX/;UID=1",
		"/INBOX/;UID=1/;FOO=1",
	} {
		st, _ := appendURL(u)
		if !strings.HasPrefix(st, "NO [BADURL ") {
			t.Errorf("URL %s: %q, want NO [BADURL ...]", u, st)
		}
	}
	// What bob has is not alice's: "/INBOX/;UID=1" is her own INBOX.
	if _, got := appendURL("/INBOX/;UID=1/;SECTION=TEXT"); strings.Contains(got, "bob only") {
		t.Errorf("alice's URL reached bob's message: %q", got)
	}
	mustContain(t, rc.ok("STATUS Drafts (MESSAGES)"), fmt.Sprintf("(MESSAGES %d)", 13))
}

// TestCatenateLimits: a CATENATE message over the append limit is TOOBIG
// (RFC 4469 section 5), however small its literals; NUL bytes come only
// in a literal8 TEXT part (RFC 3516); malformed part lists are BAD.
func TestCatenateLimits(t *testing.T) {
	ts := newTestServer(t, withAppendLimit(1000))
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("big", strings.Repeat("b", 700)))
	rc := ts.rawLogin("alice")
	rc.fail("NO [TOOBIG]", `APPEND Drafts CATENATE (URL "/INBOX/;UID=1" URL "/INBOX/;UID=1")`)
	rc.ok(`APPEND Drafts CATENATE (URL "/INBOX/;UID=1" TEXT {4+}` + "\r\nmore)")
	mustContain(t, rc.ok("STATUS Drafts (MESSAGES)"), "(MESSAGES 1)")

	bin := "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02"
	if _, st := rc.cmd(fmt.Sprintf("APPEND Drafts CATENATE (TEXT {%d+}\r\n%s)", len(bin), bin)); !strings.HasPrefix(st, "BAD") {
		t.Errorf("NUL bytes in a TEXT literal: %q, want BAD", st)
	}
	if _, st := rc.cmd(fmt.Sprintf("APPEND Drafts CATENATE (TEXT ~{%d+}\r\n%s)", len(bin), bin)); !strings.HasPrefix(st, "OK") {
		t.Errorf("NUL bytes in a TEXT literal8: %q", st)
	}
	rc.ok("SELECT Drafts")
	mustContain(t, rc.ok("FETCH 2 (BINARY.PEEK[1])"), "BINARY[1] ~{3}\r\n\x00\x01\x02)")

	for _, line := range []string{
		"APPEND Drafts CATENATE ()",
		"APPEND Drafts CATENATE",
		`APPEND Drafts CATENATE (URL)`,
		`APPEND Drafts CATENATE (URL "")`,
		`APPEND Drafts CATENATE (FOO "x")`,
		`APPEND Drafts CATENATE (TEXT "quoted")`,
		`APPEND Drafts CATENATE URL "/INBOX/;UID=1"`,
	} {
		rejects(t, rc, line)
	}
}

// TestCatenateMultiAppend: CATENATE messages and plain literals in one
// MULTIAPPEND; a bad URL in the last message stores none of them.
func TestCatenateMultiAppend(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("source", "body"))
	rc := ts.rawLogin("alice")
	plain := simpleMessage("plain", "p")
	_, st := rc.cmd(fmt.Sprintf(`APPEND Drafts CATENATE (URL "/INBOX/;UID=1") (\Seen) {%d+}`+"\r\n%s"+
		` CATENATE (TEXT {8+}`+"\r\nSubject:"+` URL "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%%20(Date)")`, len(plain), plain))
	if !strings.HasPrefix(st, "OK [APPENDUID ") || !strings.Contains(st, " 1:3]") {
		t.Fatalf("three messages: %q", st)
	}
	_, st = rc.cmd(fmt.Sprintf(`APPEND Drafts {%d+}`+"\r\n%s"+` CATENATE (URL "/INBOX/;UID=1") CATENATE (URL "/INBOX/;UID=7")`, len(plain), plain))
	if !strings.HasPrefix(st, "NO [BADURL /INBOX/;UID=7]") {
		t.Fatalf("a bad URL in the third: %q", st)
	}
	mustContain(t, rc.ok("STATUS Drafts (MESSAGES UIDNEXT)"), "(MESSAGES 3 UIDNEXT 4)")
	// A destination that does not exist is TRYCREATE, before any URL.
	rc.fail("NO [TRYCREATE]", `APPEND Nowhere CATENATE (URL "/INBOX/;UID=9")`)
}

// FuzzCatenateCommand sends APPEND CATENATE with arbitrary part lists
// (go-imap's parser in appendmulti.go, the URL resolution in
// catenate.go): each gets OK, NO or BAD, never an internal error, and
// the session goes on.
func FuzzCatenateCommand(f *testing.F) {
	for _, s := range []string{
		`(URL "/INBOX/;UID=1")`,
		`(URL "/INBOX/;UID=1/;SECTION=1" URL ";UID=1/;SECTION=HEADER")`,
		`(TEXT "x")`, `()`, `(URL "")`, `(URL /INBOX/;UID=1)`,
		`(URL "/INBOX/;UID=1") CATENATE (URL "/INBOX/;UID=2")`,
		`(URL "imap://alice@h/INBOX;UIDVALIDITY=1/;UID=1/;PARTIAL=0.10")`,
		`(URL "/INBOX/;UID=1") (\Seen) "01-Jan-2020 00:00:00 +0000" CATENATE (URL "/INBOX/;UID=1")`,
	} {
		f.Add(s)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", binaryMessage)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	f.Fuzz(func(t *testing.T, parts string) {
		if len(parts) > 500 || strings.ContainsAny(parts, "\r\n{") {
			t.Skip("not one line")
		}
		rc.t = t
		_, st := rc.cmd("APPEND Drafts CATENATE " + parts)
		if !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "NO") && !strings.HasPrefix(st, "BAD") || strings.Contains(st, "SERVERBUG") {
			t.Fatalf("APPEND Drafts CATENATE %s: %q", parts, st)
		}
		rc.ok("NOOP")
	})
}
