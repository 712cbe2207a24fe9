package imapsrv

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// summary is what FETCH ENVELOPE and BODYSTRUCTURE need, computed once at
// delivery (Summarize) so that a client listing a mailbox does not make the
// server parse every message again.
type summary struct {
	Envelope      *imap.Envelope
	BodyStructure imap.BodyStructure
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
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(computeSummary(raw)); err != nil {
		return nil
	}
	return buf.Bytes()
}

func computeSummary(raw []byte) *summary {
	s := &summary{BodyStructure: imapserver.ExtractBodyStructure(bytes.NewReader(raw))}
	if h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw))); err == nil {
		s.Envelope = imapserver.ExtractEnvelope(h)
	}
	if s.Envelope == nil {
		s.Envelope = &imap.Envelope{}
	}
	if s.BodyStructure == nil {
		s.BodyStructure = &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Size: uint32(len(raw))}
	}
	return s
}

func decodeSummary(b []byte) (*summary, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("no summary")
	}
	registerSummaryTypes()
	var s summary
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding summary: %w", err)
	}
	if s.Envelope == nil || s.BodyStructure == nil {
		return nil, fmt.Errorf("incomplete summary")
	}
	return &s, nil
}
