package imapsrv

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// naiveIndexFold is the obvious definition indexFoldASCII must agree with.
func naiveIndexFold(hay []byte, needle string) int {
	lower := func(b []byte) []byte {
		out := make([]byte, len(b))
		for i, c := range b {
			out[i] = lowerASCII(c)
		}
		return out
	}
	return bytes.Index(lower(hay), lower([]byte(needle)))
}

func TestIndexFoldASCII(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("aAbBqQ-1 \r\n\xff")
	for n := 0; n < 20000; n++ {
		hay := make([]byte, r.IntN(40))
		for i := range hay {
			hay[i] = alphabet[r.IntN(len(alphabet))]
		}
		needle := make([]byte, r.IntN(4))
		for i := range needle {
			needle[i] = alphabet[r.IntN(len(alphabet)-1)] // ASCII only
		}
		if got, want := indexFoldASCII(hay, string(needle)), naiveIndexFold(hay, string(needle)); got != want {
			t.Fatalf("indexFoldASCII(%q, %q) = %d, want %d", hay, needle, got, want)
		}
	}
}

// rawHeaderLacks may only say "no" when the decoded header text indeed
// lacks the word.
func TestRawHeaderLacks(t *testing.T) {
	raw := []byte("From: Ann <ann@example.org>\r\nSubject: the quarterly\r\n report is late\r\n" +
		"X-Enc: =?utf-8?q?quokka?=\r\nTo:bob@example.org\r\n\r\nbody quokka\r\n")
	mm := &matchMessage{raw: raw}
	for _, w := range []string{"quarterly", "REPORT", "quokka", "ann@EXAMPLE", "subject", "to", "bob", "absent",
		"quarterly report", "to: bob", "late\r\n", "x-enc: quokka"} {
		lacks := rawHeaderLacks(raw[:headerLen(raw)], w)
		mm.text = nil
		has := mm.headerContains(w)
		if lacks && has {
			t.Errorf("%q: raw header says absent, decoded header has it", w)
		}
	}
	plain := []byte("Subject: the quarterly\r\n report\r\n\r\nquokka\r\n")
	for w, want := range map[string]bool{"quarterly": false, "report": false, "quokka": true, "subject": false, "the quarterly": false} {
		if got := rawHeaderLacks(plain[:headerLen(plain)], w); got != want {
			t.Errorf("rawHeaderLacks(%q) = %v, want %v", w, got, want)
		}
	}
}

func TestMightBeEncoded(t *testing.T) {
	for raw, want := range map[string]bool{
		"Content-Type: text/plain; charset=us-ascii\r\n\r\nhello":                false,
		"Content-Type: text/plain; charset=\"UTF-8\"\r\n\r\nhello a=b":           false,
		"Content-Type: text/plain; charset=\"utf-16\"\r\n\r\nh\x00i\x00":         true,
		"Content-Type: text/plain; CHARSET=UTF-7\r\n\r\n+AGgAaQ-":                true,
		"Content-Transfer-Encoding: BASE64\r\n\r\naGk=":                          true,
		"Content-Transfer-Encoding: quoted-printable\r\n\r\nh=\r\ni":             true,
		"Subject: charset=utf-16 in a subject is harmless too, but detected\r\n": true,
		"plain text with = signs and no charset":                                 false,
	} {
		if got := mightBeEncoded([]byte(raw)); got != want {
			t.Errorf("mightBeEncoded(%q) = %v, want %v", raw, got, want)
		}
	}
}

func TestRarestByte(t *testing.T) {
	for s, want := range map[string]int{"quokka": 0, "base64": 4, "quoted-printable": 6, "the": 1, "a": 0} {
		if got := rarestByte(s); got != want {
			t.Errorf("rarestByte(%q) = %d, want %d", s, got, want)
		}
	}
}

// FETCH of header sections reads only the header (headerOnly): for every
// fixture, what the header alone gives is what the whole message gives.
func TestHeaderSectionsFromHeaderOnly(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.eml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	sections := []*imap.FetchItemBodySection{
		{Specifier: imap.PartSpecifierHeader},
		{Specifier: imap.PartSpecifierHeader, Partial: &imap.SectionPartial{Offset: 3, Size: 20}},
		{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "Subject", "X-Missing"}},
		{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Date", "Message-ID"}},
	}
	extract := func(raw []byte, bs *imap.FetchItemBodySection) []byte {
		buf, ok := wholeSection(raw, bs)
		if !ok {
			buf = imapserver.ExtractBodySection(bytes.NewReader(raw), bs)
			if buf == nil {
				if p := parseable(raw); !bytes.Equal(p, raw) {
					buf = imapserver.ExtractBodySection(bytes.NewReader(p), bs)
				}
			}
		}
		return buf
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bs := range sections {
			if !headerOnly(&imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{bs}}) {
				t.Fatalf("%+v not header-only", bs)
			}
			whole, head := extract(raw, bs), extract(raw[:headerLen(raw)], bs)
			if !bytes.Equal(whole, head) {
				t.Errorf("%s %+v:\nwhole message: %q\nheader only:   %q", f, bs, whole, head)
			}
		}
	}
	if headerOnly(&imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText}}}) ||
		headerOnly(&imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Part: []int{1}, Specifier: imap.PartSpecifierHeader}}}) {
		t.Error("headerOnly accepts a section outside the header")
	}
}

func TestMergeSpans(t *testing.T) {
	for _, c := range []struct {
		in   []span
		top  uint32
		want []span
	}{
		{[]span{{5, 9}, {1, 3}, {4, 4}, {8, 12}}, 100, []span{{1, 12}}},
		{[]span{{7, 7}, {1, 2}, {1, 2}}, 100, []span{{1, 2}, {7, 7}}},
		{[]span{{1, 4000000000}}, 10, []span{{1, 10}}},
		{[]span{{0, 0}, {11, 20}}, 10, nil},
		{[]span{{3, 4294967295}, {1, 1}}, 4294967295, []span{{1, 1}, {3, 4294967295}}},
	} {
		got := mergeSpans(slices.Clone(c.in), c.top)
		if len(got) != len(c.want) || len(got) > 0 && !slices.Equal(got, c.want) {
			t.Errorf("mergeSpans(%v, %d) = %v, want %v", c.in, c.top, got, c.want)
		}
	}
}
