package imapsrv

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"
)

// summary is what FETCH ENVELOPE and BODYSTRUCTURE need, computed once at
// delivery (Summarize) so that a client listing a mailbox does not make the
// server parse every message again. It is stored in summarycodec.go's
// binary form: a field added here goes there too (FuzzSummaryCodec
// compares the two forms field by field).
type summary struct {
	Envelope      *imap.Envelope
	BodyStructure imap.BodyStructure
	// Preview is the message's PREVIEW (RFC 8970, preview.go), valid
	// when PreviewVersion is previewVersion: summaries stored before
	// previews existed decode with 0.
	Preview        string
	PreviewVersion uint8
}

// summaryCodec holds gob's type registrations for the body structure
// interface. gob keeps them process-wide; registering the same names again
// is harmless, so each codec use is independent of init order.
func registerSummaryTypes() {
	gob.RegisterName("certmail.bs.single", &imap.BodyStructureSinglePart{})
	gob.RegisterName("certmail.bs.multi", &imap.BodyStructureMultiPart{})
}

// Summarize computes what FETCH needs from a message once, at delivery;
// pass it as mailbox.Options.Summarize. It never fails: a message too
// broken to parse gets a minimal summary, and FETCH still works.
func Summarize(raw []byte) []byte {
	registerSummaryTypes()
	// The sort keys go first, outside the gob, so that SORT and THREAD
	// read them without decoding the body structure (see sortkeys.go).
	var buf bytes.Buffer
	buf.WriteString(sortKeysMagic)
	buf.Write(encodeSortKeys(nil, computeSortKeys(raw)))
	sum := computeSummary(raw)
	if b, err := encodeSummary(buf.Bytes(), sum); err == nil {
		return b
	}
	// Nested deeper than the binary form goes: gob, as before.
	if err := gob.NewEncoder(&buf).Encode(sum); err != nil {
		return nil
	}
	return buf.Bytes()
}

func computeSummary(raw []byte) *summary {
	// A header with a broken line would otherwise lose the envelope
	// entirely (see parseable).
	raw = parseable(raw)
	s := &summary{BodyStructure: extractBodyStructure(raw),
		Preview: computePreview(raw), PreviewVersion: previewVersion}
	if h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw))); err == nil {
		s.Envelope = extractEnvelope(h)
	}
	if s.Envelope == nil {
		s.Envelope = &imap.Envelope{}
	}
	if s.BodyStructure == nil {
		s.BodyStructure = &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Size: uint32(len(raw))}
	}
	s.BodyStructure = fixBodyStructure(s.BodyStructure)
	return s
}

// fixBodyStructure makes a body structure that imapserver can write and
// clients can parse. imapserver panics (dropping the connection, so the
// client can never list the mailbox) on a multipart without parts, which
// is what a multipart message whose boundary never occurs parses to, and
// on BODYSTRUCTURE of a part without extension data; a part without a
// Content-Type came out as ("" "" ...), where RFC 2045 says text/plain.
func fixBodyStructure(bs imap.BodyStructure) imap.BodyStructure {
	switch b := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if b.Subtype == "" {
			b.Subtype = "mixed"
		}
		children := b.Children[:0]
		for _, c := range b.Children {
			if c != nil {
				children = append(children, fixBodyStructure(c))
			}
		}
		if len(children) == 0 {
			children = append(children, fixBodyStructure(&imap.BodyStructureSinglePart{
				Type: "text", Subtype: "plain", Text: &imap.BodyStructureText{},
			}))
		}
		b.Children = children
		if b.Extended == nil {
			b.Extended = &imap.BodyStructureMultiPartExt{}
		}
		return b
	case *imap.BodyStructureSinglePart:
		if b.Type == "" || b.Subtype == "" {
			b.Type, b.Subtype = "text", "plain"
			if b.Text == nil {
				b.Text = &imap.BodyStructureText{}
			}
		}
		if m := b.MessageRFC822; m != nil {
			if m.Envelope == nil {
				m.Envelope = &imap.Envelope{}
			}
			if m.BodyStructure == nil {
				m.BodyStructure = &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain"}
			}
			m.BodyStructure = fixBodyStructure(m.BodyStructure)
		}
		if b.Extended == nil {
			b.Extended = &imap.BodyStructureSinglePartExt{}
		}
		return b
	default:
		return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain",
			Text: &imap.BodyStructureText{}, Extended: &imap.BodyStructureSinglePartExt{}}
	}
}

func decodeSummary(b []byte) (*summary, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("no summary")
	}
	registerSummaryTypes()
	_, b, err := splitSummary(b)
	if err != nil {
		return nil, fmt.Errorf("decoding summary: %w", err)
	}
	var s summary
	if rest, ok := bytes.CutPrefix(b, []byte(summaryMagic)); ok {
		bs, err := decodeSummaryBinary(rest)
		if err != nil {
			return nil, err
		}
		s = *bs
	} else if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding summary: %w", err)
	}
	if s.Envelope == nil || s.BodyStructure == nil {
		return nil, fmt.Errorf("incomplete summary")
	}
	// Summaries stored before fixBodyStructure existed may hold what
	// imapserver cannot write.
	s.BodyStructure = fixBodyStructure(s.BodyStructure)
	return &s, nil
}
