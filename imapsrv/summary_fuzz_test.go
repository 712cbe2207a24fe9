package imapsrv

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// FuzzSummarize: whatever bytes a message has, computing, encoding and
// decoding its summary never panics, and the result is a body structure
// imapserver can write (see fixBodyStructure). The raw-message helpers
// FETCH uses are exercised on the same input.
func FuzzSummarize(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		enc := Summarize(raw)
		if enc == nil {
			t.Fatal("Summarize returned nothing")
		}
		s, err := decodeSummary(enc)
		if err != nil {
			t.Fatalf("decoding what Summarize made: %v", err)
		}
		checkWritable(t, s.BodyStructure, 0)
		if s.Envelope == nil {
			t.Fatal("no envelope")
		}
		checkWritable(t, computeSummary(raw).BodyStructure, 0)
		// Arbitrary bytes as a stored summary: an error, not a panic.
		if s, err := decodeSummary(raw); err == nil {
			checkWritable(t, s.BodyStructure, 0)
		}

		n := headerLen(raw)
		if n < 0 || n > len(raw) {
			t.Fatalf("headerLen %d of %d bytes", n, len(raw))
		}
		h, _ := wholeSection(raw, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader})
		tx, _ := wholeSection(raw, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})
		if !bytes.Equal(append(append([]byte(nil), h...), tx...), raw) {
			t.Fatal("HEADER and TEXT do not make up the message")
		}
		p := parseable(raw)
		if !headerParses(p[:headerLen(p)]) {
			t.Fatalf("parseable(%q) = %q does not parse", raw, p)
		}
	})
}

// checkWritable fails if imapserver would panic writing bs.
func checkWritable(t *testing.T, bs imap.BodyStructure, depth int) {
	t.Helper()
	switch b := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if len(b.Children) == 0 || b.Extended == nil || b.Subtype == "" {
			t.Fatalf("unwritable multipart %#v", b)
		}
		for _, c := range b.Children {
			checkWritable(t, c, depth+1)
		}
	case *imap.BodyStructureSinglePart:
		if b.Extended == nil || b.Type == "" || b.Subtype == "" {
			t.Fatalf("unwritable part %#v", b)
		}
		if m := b.MessageRFC822; m != nil {
			if m.Envelope == nil || m.BodyStructure == nil {
				t.Fatalf("unwritable message/rfc822 %#v", m)
			}
			checkWritable(t, m.BodyStructure, depth+1)
		}
	default:
		t.Fatalf("body structure of type %T", bs)
	}
}
