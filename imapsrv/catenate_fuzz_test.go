package imapsrv

import (
	"strings"
	"testing"
)

// FuzzParseIMAPURL: the CATENATE URL parser (RFC 5092 forms, catenate.go)
// never panics, and what it accepts names a message (a UID), with a
// section no deeper than FETCH walks and a partial range that makes sense.
func FuzzParseIMAPURL(f *testing.F) {
	for _, s := range []string{
		"imap://alice@localhost/INBOX/;UID=1",
		"imap://alice;AUTH=*@host:143/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2.MIME/;PARTIAL=0.1024",
		"//host/a/b%20c/;uid=3/;section=HEADER.FIELDS%20(From%20Subject)",
		"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER",
		";UID=20/;SECTION=TEXT",
		"/INBOX/;UID=1/;PARTIAL=5",
		"/INBOX/;UID=1/;EXPIRE=2030-01-01T00:00:00Z/;URLAUTH=anonymous:internal:00",
		"/%FF/;UID=1", "/INBOX/;UID=4294967296", "/INBOX/;UID=1/;SECTION=1..2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := parseIMAPURL(s)
		if err != nil {
			return
		}
		if u.uid == 0 {
			t.Fatalf("%q: accepted without a UID", s)
		}
		if u.section != nil && len(u.section.Part) > maxMIMEDepth+1 {
			t.Fatalf("%q: section %v deeper than FETCH walks", s, u.section.Part)
		}
		if p := u.partial; p != nil && (p.Offset < 0 || p.Size < 0) {
			t.Fatalf("%q: partial %+v", s, p)
		}
		if u.mailbox == "" && !strings.HasPrefix(strings.ToUpper(s), ";UID=") {
			t.Fatalf("%q: no mailbox, yet not relative", s)
		}
	})
}

// FuzzParseSectionSpec: RFC 5092's ";SECTION=" text parses into what
// FETCH BODY[...] takes, or is refused; never a panic.
func FuzzParseSectionSpec(f *testing.F) {
	for _, s := range []string{"1", "1.2", "HEADER", "TEXT", "1.MIME", "2.HEADER", "HEADER.FIELDS (From To)",
		"1.HEADER.FIELDS.NOT (Subject)", "MIME", "0", "1.", ".1", "1.2.3.4.5.6.7.8.9.10", "HEADER.FIELDS ()"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bs, err := parseSectionSpec(s)
		if err != nil {
			return
		}
		for _, n := range bs.Part {
			if n <= 0 {
				t.Fatalf("%q: part %v", s, bs.Part)
			}
		}
		if len(bs.Part) > maxMIMEDepth+1 {
			t.Fatalf("%q: part %v too deep", s, bs.Part)
		}
	})
}
