package imapsrv

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// FuzzHeaderFieldsSection: where headerFieldsSection answers, it answers
// what imapserver.ExtractBodySection does, for any header and field list.
func FuzzHeaderFieldsSection(f *testing.F) {
	f.Add([]byte("From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n there\r\nDate: x\r\n\r\nbody"), "From To Subject Date")
	f.Add([]byte("from: a\r\nFROM: b\r\nX-Y : c\r\n\tfolded\r\n\r\n"), "From x-y")
	f.Add([]byte("Subject: lf\nFrom: a\n\nbody"), "Subject")
	f.Add([]byte("No colon\r\nFrom: a\r\n\r\n"), "From")
	f.Add([]byte(" leading: space\r\n\r\n"), "Leading")
	f.Add([]byte("A: 1\r\nB: 2\r\n\r\n"), "\u212a B")
	f.Add([]byte(": empty name\r\nA: 1\r\n\r\n"), "A")
	f.Fuzz(func(t *testing.T, raw []byte, fields string) {
		names := strings.Fields(fields)
		if len(names) == 0 {
			return
		}
		for _, partial := range []*imap.SectionPartial{nil, {Offset: 3, Size: 10}} {
			bs := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: names, Partial: partial}
			got, ok := headerFieldsSection(raw, bs)
			if !ok {
				continue
			}
			want := imapserver.ExtractBodySection(bytes.NewReader(raw), bs)
			if !bytes.Equal(got, want) {
				t.Fatalf("HEADER.FIELDS %q of %q:\n got %q\nwant %q", names, raw, got, want)
			}
		}
	})
}

func TestHeaderFieldsSectionTakesPlainHeaders(t *testing.T) {
	raw := []byte("From: a@example.org\r\nSubject: hi\r\n there\r\n\r\nbody\r\n")
	bs := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"subject"}}
	got, ok := headerFieldsSection(raw, bs)
	if !ok || string(got) != "Subject: hi\r\n there\r\n\r\n" {
		t.Fatalf("got %q %v", got, ok)
	}
	// Not plain: left to imapserver.
	for _, r := range []string{"From: a\nSubject: b\n\nbody", "Subject: a\r\n", "bad line\r\n\r\n"} {
		if _, ok := headerFieldsSection([]byte(r), bs); ok {
			t.Errorf("%q was taken", r)
		}
	}
}
