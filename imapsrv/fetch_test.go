package imapsrv_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

var fixtureNames = []string{"multipart.eml", "encoded.eml", "binary.eml", "malformed.eml",
	"headerless.eml", "lf-only.eml", "empty.eml", "multipart-noparts.eml"}

func TestFetchThunderbird(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	msgs := make([]string, 5)
	for i := range msgs {
		msgs[i] = simpleMessage(fmt.Sprintf("message %d", i+1), strings.Repeat(fmt.Sprintf("line %d of the body\r\n", i), 200))
		ts.deliver("alice", "INBOX", msgs[i])
	}
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)

	// The flags of everything.
	f := rc.ok(`UID FETCH 1:* (FLAGS)`)
	if len(f) != 5 {
		t.Fatalf("UID FETCH 1:* (FLAGS): %q", f)
	}
	for i, l := range f {
		want := fmt.Sprintf("* %d FETCH (UID %d FLAGS ())", i+1, i+1)
		if l != want {
			t.Errorf("got %q, want %q", l, want)
		}
	}
	// Lower case.
	if f := rc.ok(`uid fetch 1:* (flags)`); len(f) != 5 {
		t.Errorf("lower-case uid fetch: %q", f)
	}

	// Headers of a range, for the message list.
	f = rc.ok(`UID FETCH 2:4 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Subject Date)])`)
	if len(f) != 3 {
		t.Fatalf("UID FETCH 2:4 headers: %q", f)
	}
	for i, l := range f {
		n := i + 2
		for _, want := range []string{
			fmt.Sprintf("* %d FETCH (", n), fmt.Sprintf("UID %d", n),
			fmt.Sprintf("RFC822.SIZE %d", len(msgs[n-1])), "FLAGS ()",
			"BODY[HEADER.FIELDS (",
			"From: Alice <alice@example.org>\r\n", "To: Bob <bob@example.org>\r\n",
			fmt.Sprintf("Subject: message %d\r\n", n), "Date: Mon, 02 Jan 2006 15:04:05 -0700\r\n",
		} {
			if !strings.Contains(l, want) {
				t.Errorf("header fetch %q lacks %q", l, want)
			}
		}
		if strings.Contains(l, "Message-ID") || strings.Contains(l, "line ") {
			t.Errorf("header fetch returned more than asked: %q", l)
		}
		if !strings.Contains(l, "\r\n\r\n)") {
			t.Errorf("header fetch does not end with an empty line: %q", l)
		}
	}
	// HEADER.FIELDS.NOT.
	l := sectionLiteral(rc.ok(`FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Message-ID Date)])`)[0], `BODY[HEADER.FIELDS.NOT ("Message-ID" "Date")]`)
	if strings.Contains(l, "Message-ID:") || strings.Contains(l, "Date:") || !strings.Contains(l, "Subject: message 1") {
		t.Errorf("HEADER.FIELDS.NOT: %q", l)
	}

	// A preview of the text, partially.
	body := msgs[0][strings.Index(msgs[0], "\r\n\r\n")+4:]
	l = rc.ok(`UID FETCH 1 (BODY.PEEK[TEXT]<0.2048>)`)[0]
	want := fmt.Sprintf("BODY[TEXT]<0> {2048}\r\n%s)", body[:2048])
	if !strings.HasSuffix(l, want) {
		t.Errorf("BODY.PEEK[TEXT]<0.2048>: %q", l)
	}
	l = rc.ok(`UID FETCH 1 (BODY.PEEK[TEXT]<100.50>)`)[0]
	if !strings.HasSuffix(l, fmt.Sprintf("BODY[TEXT]<100> {50}\r\n%s)", body[100:150])) {
		t.Errorf("BODY.PEEK[TEXT]<100.50>: %q", l)
	}
	// Beyond the end: empty.
	l = rc.ok(`UID FETCH 1 (BODY.PEEK[TEXT]<100000.10>)`)[0]
	if !strings.Contains(l, `BODY[TEXT]<100000> ""`) && !strings.Contains(l, "BODY[TEXT]<100000> {0}") {
		t.Errorf("partial beyond the end: %q", l)
	}
	// HEADER and the whole message.
	l = rc.ok(`FETCH 1 (BODY.PEEK[HEADER])`)[0]
	hdr := msgs[0][:strings.Index(msgs[0], "\r\n\r\n")+4]
	if !strings.HasSuffix(l, fmt.Sprintf("BODY[HEADER] {%d}\r\n%s)", len(hdr), hdr)) {
		t.Errorf("BODY.PEEK[HEADER]: %q", l)
	}
	mustNotContain(t, rc.ok(`FETCH 1:* (FLAGS)`), `\Seen`)

	// BODY[] (no PEEK) sets \Seen and says so in the same response.
	another := ts.rawLogin("alice")
	another.ok(`SELECT INBOX`)
	l = rc.ok(`UID FETCH 3 (BODY[])`)[0]
	if !strings.Contains(l, `FLAGS (\Seen)`) || !strings.Contains(l, msgs[2]) {
		t.Errorf("UID FETCH 3 BODY[]: %q", l)
	}
	mustContain(t, rc.ok(`FETCH 3 (FLAGS)`), `\Seen`)
	// Fetching it again does not announce anything new.
	if l := rc.ok(`UID FETCH 3 (BODY[])`)[0]; strings.Count(l, "FLAGS") > 1 {
		t.Errorf("second BODY[]: %q", l)
	}
	// The other session learns about it.
	mustContain(t, another.ok(`NOOP`), `* 3 FETCH (`, `\Seen`)

	// IMAP4rev1's RFC822.HEADER peeks; RFC822 and RFC822.TEXT set \Seen.
	l = rc.ok(`FETCH 4 (RFC822.HEADER)`)[0]
	if strings.Contains(l, `\Seen`) || sectionLiteral(l, "RFC822.HEADER") != msgs[3][:strings.Index(msgs[3], "\r\n\r\n")+4] {
		t.Errorf("RFC822.HEADER: %q", l)
	}
	l = rc.ok(`FETCH 4 (RFC822.TEXT)`)[0]
	if !strings.Contains(l, `\Seen`) || sectionLiteral(l, "RFC822.TEXT") != msgs[3][strings.Index(msgs[3], "\r\n\r\n")+4:] {
		t.Errorf("RFC822.TEXT: %q", l)
	}
	l = rc.ok(`FETCH 5 (RFC822)`)[0]
	if !strings.Contains(l, `\Seen`) || sectionLiteral(l, "RFC822") != msgs[4] {
		t.Errorf("RFC822: %q", l)
	}

	// Macros.
	mustContain(t, rc.ok(`FETCH 1 FAST`), "FLAGS", "INTERNALDATE", "RFC822.SIZE")
	mustContain(t, rc.ok(`FETCH 1 ALL`), "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")
	mustContain(t, rc.ok(`FETCH 1 FULL`), "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY (")

	// Ranges: "*", reversed ranges, UID ranges past the end.
	mustContain(t, rc.ok(`FETCH * (UID)`), "* 5 FETCH (UID 5)")
	if f := rc.ok(`FETCH 4:2 (UID)`); len(f) != 3 {
		t.Errorf("FETCH 4:2: %q", f)
	}
	// "UID 100:*" names the highest UID even though 100 > it (RFC 9051 6.4.8).
	if f := rc.ok(`UID FETCH 100:* (UID)`); len(f) != 1 || f[0] != "* 5 FETCH (UID 5)" {
		t.Errorf("UID FETCH 100:*: %q", f)
	}
	if f := rc.ok(`UID FETCH 6:10 (UID)`); len(f) != 0 {
		t.Errorf("UID FETCH past the end: %q", f)
	}
	if f := rc.ok(`UID FETCH 1,3,5 (UID)`); len(f) != 3 {
		t.Errorf("UID FETCH 1,3,5: %q", f)
	}

	// Bad requests are BAD, and the connection survives.
	rc.fail("BAD", `FETCH 1 (BOGUS)`)
	// An unparseable sequence set is BAD and named (go-imap answered NO
	// [SERVERBUG]; third_party/go-imap is patched).
	if st := rc.fail("BAD", `FETCH x (FLAGS)`); !strings.Contains(st, "invalid sequence-set") {
		t.Errorf("FETCH x: %q", st)
	}
	rc.fail("BAD", `FETCH 1 (BODY[HEADER.FIELDS])`)
	rc.fail("BAD", `UID FETCH`)
	rc.alive()
}

func TestFetchStructure(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	raw := readFixture(t, "multipart.eml")
	ts.deliver("alice", "INBOX", raw)
	c := ts.client("alice")
	c.selectBox("INBOX")

	bufs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		Envelope:      true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		RFC822Size:    true,
		InternalDate:  true,
	}).Collect()
	if err != nil || len(bufs) != 1 {
		t.Fatalf("FETCH: %v %v", bufs, err)
	}
	m := bufs[0]
	env := m.Envelope
	if env == nil {
		t.Fatal("no envelope")
	}
	if env.Subject != "Quarterly réport with attachment" {
		t.Errorf("subject %q", env.Subject)
	}
	if !env.Date.Equal(time.Date(2024, 3, 5, 9, 30, 0, 0, time.FixedZone("", 3600))) {
		t.Errorf("date %v", env.Date)
	}
	if len(env.From) != 1 || env.From[0].Name != "Carol Sender" || env.From[0].Addr() != "carol@example.net" {
		t.Errorf("from %+v", env.From)
	}
	if len(env.To) != 2 || env.To[1].Addr() != "dave@example.org" {
		t.Errorf("to %+v", env.To)
	}
	if len(env.Cc) != 1 || len(env.Bcc) != 1 || len(env.ReplyTo) != 1 || env.ReplyTo[0].Addr() != "replies@example.net" {
		t.Errorf("cc/bcc/reply-to %+v %+v %+v", env.Cc, env.Bcc, env.ReplyTo)
	}
	if env.MessageID != "multi-1@example.net" || len(env.InReplyTo) != 1 || env.InReplyTo[0] != "earlier@example.org" {
		t.Errorf("message-id %q in-reply-to %q", env.MessageID, env.InReplyTo)
	}
	if m.RFC822Size != int64(len(raw)) {
		t.Errorf("RFC822.SIZE %d, want %d", m.RFC822Size, len(raw))
	}

	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 3 {
		t.Fatalf("body structure: %#v", m.BodyStructure)
	}
	if mp.Extended == nil || mp.Extended.Params["boundary"] != "outer" {
		t.Errorf("multipart params: %+v", mp.Extended)
	}
	alt, ok := mp.Children[0].(*imap.BodyStructureMultiPart)
	if !ok || alt.Subtype != "alternative" || len(alt.Children) != 2 {
		t.Fatalf("part 1: %#v", mp.Children[0])
	}
	plain := alt.Children[0].(*imap.BodyStructureSinglePart)
	if plain.Type != "text" || plain.Subtype != "plain" || plain.Params["charset"] != "utf-8" || plain.Text == nil || plain.Text.NumLines != 1 {
		t.Errorf("part 1.1: %#v", plain)
	}
	att := mp.Children[1].(*imap.BodyStructureSinglePart)
	if att.Type != "application" || att.Encoding != "base64" || att.Extended == nil || att.Extended.Disposition == nil ||
		att.Extended.Disposition.Value != "attachment" || att.Filename() != "figures.bin" {
		t.Errorf("part 2: %#v %#v", att, att.Extended)
	}
	fwd := mp.Children[2].(*imap.BodyStructureSinglePart)
	if fwd.Type != "message" || fwd.Subtype != "rfc822" || fwd.MessageRFC822 == nil ||
		fwd.MessageRFC822.Envelope.Subject != "the forwarded one" {
		t.Errorf("part 3: %#v", fwd)
	}

	// Parts by number: the text, the attachment (raw and decoded), the
	// forwarded message's header and text, and MIME headers.
	sec := func(spec string) []byte {
		t.Helper()
		f := &imap.FetchItemBodySection{Peek: true}
		switch spec {
		case "1.1":
			f.Part = []int{1, 1}
		case "2":
			f.Part = []int{2}
		case "2.MIME":
			f.Part, f.Specifier = []int{2}, imap.PartSpecifierMIME
		case "3.HEADER":
			f.Part, f.Specifier = []int{3}, imap.PartSpecifierHeader
		case "3.TEXT":
			f.Part, f.Specifier = []int{3}, imap.PartSpecifierText
		case "9":
			f.Part = []int{9}
		}
		bufs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{f}}).Collect()
		if err != nil || len(bufs) != 1 {
			t.Fatalf("FETCH BODY[%s]: %v", spec, err)
		}
		return bufs[0].FindBodySection(f)
	}
	if got := string(sec("1.1")); got != "Hello Bob,\r\nthe quarterly figures are attached. Look for the word pineapple." {
		t.Errorf("BODY[1.1] = %q", got)
	}
	if got := string(sec("2")); !strings.HasPrefix(got, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g") {
		t.Errorf("BODY[2] = %q", got)
	}
	if got := string(sec("2.MIME")); !strings.Contains(got, `Content-Disposition: attachment; filename="figures.bin"`) {
		t.Errorf("BODY[2.MIME] = %q", got)
	}
	if got := string(sec("3.HEADER")); !strings.Contains(got, "Subject: the forwarded one\r\n") || strings.Contains(got, "kumquat") {
		t.Errorf("BODY[3.HEADER] = %q", got)
	}
	if got := string(sec("3.TEXT")); !strings.Contains(got, "kumquat") {
		t.Errorf("BODY[3.TEXT] = %q", got)
	}
	if got := sec("9"); len(got) != 0 {
		t.Errorf("BODY[9] of a message with 3 parts = %q", got)
	}

	// BINARY[2]: the attachment decoded.
	bin := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	bufs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{bin},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 256)
	for i := range want {
		want[i] = byte(i)
	}
	if got := bufs[0].FindBinarySection(bin); !bytes.Equal(got, want) {
		t.Errorf("BINARY[2] = %q", got)
	}
	if len(bufs[0].BinarySectionSize) != 1 || bufs[0].BinarySectionSize[0].Size != 256 {
		t.Errorf("BINARY.SIZE[2] = %+v", bufs[0].BinarySectionSize)
	}
}

// TestFetchBadMessages fetches everything a client can ask for from
// malformed and binary messages: they are served as stored, and nothing
// crashes or drops the connection.
func TestFetchBadMessages(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for _, name := range fixtureNames {
		ts.deliver("alice", "INBOX", readFixture(t, name))
	}
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	for i, name := range fixtureNames {
		raw := readFixture(t, name)
		n := i + 1
		all := rc.ok(fmt.Sprintf(`FETCH %d (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE `+
			`BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] BODY.PEEK[2.HEADER] `+
			`BODY.PEEK[1.1] BODY.PEEK[3.TEXT] BODY.PEEK[HEADER.FIELDS (From Subject)] BINARY.PEEK[1] BINARY.SIZE[1])`, n))
		if len(all) != 1 {
			t.Errorf("%s: %q", name, all)
			continue
		}
		if !strings.Contains(all[0], fmt.Sprintf("RFC822.SIZE %d", len(raw))) {
			t.Errorf("%s: RFC822.SIZE wrong in %q", name, all[0])
		}
		// BODY[] is the stored bytes, HEADER and TEXT split them.
		whole := rc.ok(fmt.Sprintf(`FETCH %d (BODY.PEEK[])`, n))
		if len(whole) != 1 || !strings.HasSuffix(whole[0], fmt.Sprintf("BODY[] {%d}\r\n%s)", len(raw), raw)) {
			t.Errorf("%s: BODY[] is not the stored message", name)
		}
		hl := rc.ok(fmt.Sprintf(`FETCH %d (BODY.PEEK[HEADER] BODY.PEEK[TEXT])`, n))[0]
		h, tx := sectionLiteral(hl, "BODY[HEADER]"), sectionLiteral(hl, "BODY[TEXT]")
		if h+tx != raw {
			t.Errorf("%s: HEADER+TEXT %q + %q != message", name, h, tx)
		}
		// The body structure parses.
		c := ts.client("alice")
		c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
		bufs, err := c.Fetch(imap.SeqSetNum(uint32(n)), &imap.FetchOptions{
			Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		}).Collect()
		if err != nil || len(bufs) != 1 || bufs[0].BodyStructure == nil || bufs[0].Envelope == nil {
			t.Errorf("%s: imapclient FETCH: %v %v", name, bufs, err)
		}
		c.Close()
	}
	// A header with a broken line still yields its other fields.
	mal := rc.ok(`FETCH 4 (ENVELOPE BODY.PEEK[HEADER.FIELDS (Subject)])`)[0]
	if !strings.Contains(mal, "Subject: malformed") || !strings.Contains(mal, `"malformed `) {
		t.Errorf("malformed header: %q", mal)
	}
	// A multipart without its boundary is a multipart with one empty part.
	mustContain(t, rc.ok(`FETCH 8 (BODYSTRUCTURE)`), `"mixed"`)
	rc.alive()
}

// sectionLiteral extracts the literal that follows name in a FETCH line.
func sectionLiteral(line, name string) string {
	i := strings.Index(line, name+" {")
	if i < 0 {
		if strings.Contains(line, name+` ""`) {
			return ""
		}
		return "<missing>"
	}
	rest := line[i+len(name)+2:]
	var n int
	fmt.Sscanf(rest, "%d", &n)
	j := strings.Index(rest, "}\r\n")
	return rest[j+3 : j+3+n]
}

// deepMessage nests n multiparts, or n message/rfc822 parts.
func deepMessage(n int, rfc822 bool) string {
	var b strings.Builder
	b.WriteString("From: deep@example.com\r\nSubject: deep\r\n")
	for i := 0; i < n; i++ {
		if rfc822 {
			b.WriteString("Content-Type: message/rfc822\r\n\r\nSubject: level\r\n")
		} else {
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
		}
	}
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\nthe bottom word is quince\r\n")
	if !rfc822 {
		for i := n - 1; i >= 0; i-- {
			fmt.Fprintf(&b, "--b%d--\r\n", i)
		}
	}
	return b.String()
}

// TestFetchDeepMessage: a message of thousands of nested parts is stored
// and served cheaply. Parsing cost grows with depth times size, and
// delivery runs inside the store's write transaction, so before the depth
// limit one such message held up every delivery for minutes. The cost is
// measured in CPU time, which the machine's load does not change: under
// -race, delivering the 5,000 nested multiparts took 70 s of CPU without
// the limit and the 5,000 nested messages 7 s; with it, each takes under
// 0.5 s, on an idle machine as at a load of 15 (when they took up to 3.6 s
// of wall time, and a bound of 5 s of wall time failed at times).
func TestFetchDeepMessage(t *testing.T) {
	const limit = 2 * time.Second // of CPU
	ts := newTestServer(t)
	ts.addUser("alice")
	for _, rfc822 := range []bool{false, true} {
		raw := deepMessage(5000, rfc822)
		start, wall := processCPU(t), time.Now()
		ts.deliver("alice", "INBOX", raw)
		if d := processCPU(t) - start; d > limit {
			t.Errorf("delivering a deeply nested message (rfc822 %v) took %v of CPU (%v of wall time)", rfc822, d, time.Since(wall))
		}
	}
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	start, wall := processCPU(t), time.Now()
	f := rc.ok(`FETCH 1:2 (BODYSTRUCTURE ENVELOPE BODY.PEEK[1.1.1.1.MIME] BINARY.SIZE[1.1.1])`)
	if len(f) != 2 {
		t.Errorf("FETCH: %q", f)
	}
	path := strings.TrimSuffix(strings.Repeat("1.", 2000), ".")
	rc.ok(`FETCH 1:2 (BODY.PEEK[` + path + `] BINARY.PEEK[` + path + `])`)
	rc.ok(`SEARCH BODY quince`)
	rc.ok(`SEARCH TEXT "not in there"`)
	if d := processCPU(t) - start; d > limit {
		t.Errorf("FETCH and SEARCH on deeply nested messages took %v of CPU (%v of wall time)", d, time.Since(wall))
	}
}
