package imapserver

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// METADATA and METADATA-SERVER (RFC 5464), server side. (certmail patch)

// SessionMetadata is an IMAP session which supports METADATA (server and
// mailbox entries) or METADATA-SERVER (server entries only, mailbox "").
type SessionMetadata interface {
	Session

	// GetMetadata returns the entries named that exist with those below
	// them to depth (RFC 5464 section 4.2.2), in any order; an entry
	// named that has no value may be returned with a nil Value.
	GetMetadata(mailbox string, entries []string, depth imap.MetadataDepth) ([]imap.MetadataEntry, error)
	// SetMetadata sets the entries, or removes those with a nil Value,
	// all or none (section 4.3).
	SetMetadata(mailbox string, entries []imap.MetadataEntry) error
	// MetadataLimits returns the largest value SETMETADATA takes (a
	// larger literal is refused before it is sent: NO [METADATA MAXSIZE
	// n]) and the most bytes of values one command may carry.
	MetadataLimits() (value, command int64)
}

func (c *Conn) metadataSession(mailbox string) (SessionMetadata, error) {
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return nil, err
	}
	caps := c.server.options.caps()
	session, ok := c.session.(SessionMetadata)
	if !ok || !caps.Has(imap.CapMetadata) && !caps.Has(imap.CapMetadataServer) {
		return nil, newClientBugError("METADATA is not supported")
	}
	if mailbox != "" && !caps.Has(imap.CapMetadata) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo,
			Text: "Only server annotations (mailbox \"\") are supported (METADATA-SERVER)"}
	}
	return session, nil
}

// handleGetMetadata reads GETMETADATA [options] mailbox entries (RFC 5464
// section 4.2). The options may also follow the mailbox, as the RFC's own
// examples write them.
func (c *Conn) handleGetMetadata(dec *imapwire.Decoder) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	maxSize, depth := int64(-1), imap.MetadataDepthZero
	words, isList, err := readAStringList(dec)
	if err != nil {
		return err
	}
	haveOptions := isList
	if isList {
		if maxSize, depth, err = parseMetadataOptions(words); err != nil {
			return err
		}
		if !dec.ExpectSP() {
			return dec.Err()
		}
	}
	var mailbox string
	if !dec.ExpectMailbox(&mailbox) || !dec.ExpectSP() {
		return dec.Err()
	}
	entries, isList, err := readAStringList(dec)
	if err != nil {
		return err
	}
	if !isList {
		var entry string
		if !dec.ExpectAString(&entry) {
			return dec.Err()
		}
		entries = []string{entry}
	} else if !haveOptions && dec.SP() {
		if maxSize, depth, err = parseMetadataOptions(entries); err != nil {
			return err
		}
		if entries, err = readMetadataEntries(dec); err != nil {
			return err
		}
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if len(entries) == 0 {
		return newClientBugError("GETMETADATA needs at least one entry")
	}
	for _, e := range entries {
		if err := imap.CheckMetadataEntry(e, true); err != nil {
			return newClientBugError(err.Error())
		}
	}
	session, err := c.metadataSession(mailbox)
	if err != nil {
		return err
	}
	values, err := session.GetMetadata(mailbox, entries, depth)
	if err != nil {
		return err
	}
	// MAXSIZE (section 4.2.1): longer values are left out, and the
	// longest of them is reported.
	var longest int64
	kept := values[:0]
	for _, v := range values {
		if maxSize >= 0 && int64(len(v.Value)) > maxSize {
			longest = max(longest, int64(len(v.Value)))
			continue
		}
		kept = append(kept, v)
	}
	if len(kept) > 0 {
		if err := c.writeMetadata(mailbox, kept); err != nil {
			return err
		}
	}
	if longest > 0 {
		return &imap.Error{Type: imap.StatusResponseTypeOK,
			Code: imap.ResponseCode("METADATA LONGENTRIES " + strconv.FormatInt(longest, 10)),
			Text: "GETMETADATA completed, some values left out for MAXSIZE"}
	}
	return nil
}

// writeMetadata writes "* METADATA mailbox (entry value ...)" (section
// 4.4.1).
func (c *Conn) writeMetadata(mailbox string, entries []imap.MetadataEntry) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("METADATA").SP().Mailbox(mailbox).SP()
	enc.List(len(entries), func(i int) {
		e := entries[i]
		enc.String(e.Name).SP()
		switch {
		case e.Value == nil:
			enc.NIL()
		case bytes.IndexByte(e.Value, 0) >= 0:
			// A value with NUL is sent as literal8 (section 5).
			enc.Special('~')
			wc := enc.Literal(int64(len(e.Value)))
			wc.Write(e.Value)
			wc.Close()
		default:
			enc.String(string(e.Value))
		}
	})
	return enc.CRLF()
}

// handleSetMetadata reads SETMETADATA mailbox (entry value ...) (RFC 5464
// section 4.3); a value is an nstring or a literal8.
func (c *Conn) handleSetMetadata(dec *imapwire.Decoder) error {
	var mailbox string
	if !dec.ExpectSP() || !dec.ExpectMailbox(&mailbox) || !dec.ExpectSP() {
		return dec.Err()
	}
	session, sessErr := c.metadataSession(mailbox)
	valueLimit, commandLimit := int64(-1), int64(-1)
	if sessErr == nil {
		valueLimit, commandLimit = session.MetadataLimits()
	}
	var entries []imap.MetadataEntry
	var total int64
	err := dec.ExpectList(func() error {
		var e imap.MetadataEntry
		if !dec.ExpectAString(&e.Name) || !dec.ExpectSP() {
			return dec.Err()
		}
		if err := imap.CheckMetadataEntry(e.Name, false); err != nil {
			return newClientBugError(err.Error())
		}
		var s string
		switch {
		case dec.Quoted(&s):
			e.Value = []byte(s)
		case dec.Atom(&s):
			if !strings.EqualFold(s, "NIL") {
				return newClientBugError("expected a value or NIL, got " + s)
			}
		default:
			dec.Special('~') // literal8: any octet but NUL is the same
			lit, nonSync, err := dec.ExpectLiteralReader()
			if err != nil {
				return err
			}
			if err := c.acceptMetadataLiteral(lit.Size(), nonSync, valueLimit, commandLimit-total, sessErr); err != nil {
				return err
			}
			if e.Value, err = io.ReadAll(lit); err != nil {
				return err
			}
		}
		total += int64(len(e.Value))
		if valueLimit >= 0 && int64(len(e.Value)) > valueLimit {
			return metadataMaxSizeError(valueLimit)
		}
		if commandLimit >= 0 && total > commandLimit {
			return metadataTooManyError(commandLimit)
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return err
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if sessErr != nil {
		return sessErr
	}
	return session.SetMetadata(mailbox, entries)
}

// acceptMetadataLiteral answers a literal value before it is sent: a
// synchronizing one too large is refused with NO [METADATA MAXSIZE n]
// (section 4.3), a non-synchronizing one too large ends the connection
// (see refuseNonSyncLiteral).
func (c *Conn) acceptMetadataLiteral(size int64, nonSync bool, valueLimit, left int64, sessErr error) error {
	limit := valueLimit
	if left >= 0 && (limit < 0 || left < limit) {
		limit = left
	}
	if sessErr != nil {
		limit = 4096 // the command fails; read no more than any command's literal
	}
	if limit >= 0 && size > limit {
		if nonSync {
			return c.refuseNonSyncLiteral(size, limit)
		}
		if sessErr != nil {
			return sessErr
		}
		if valueLimit >= 0 && size > valueLimit {
			return metadataMaxSizeError(valueLimit)
		}
		return metadataTooManyError(left)
	}
	return c.acceptLiteral(size, nonSync)
}

func metadataMaxSizeError(limit int64) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCode(fmt.Sprintf("METADATA MAXSIZE %d", limit)),
		Text: fmt.Sprintf("Metadata values are limited to %d bytes", limit)}
}

func metadataTooManyError(limit int64) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCode("METADATA TOOMANY"),
		Text: fmt.Sprintf("One SETMETADATA carries at most %d bytes of values", max(limit, 0))}
}

// readAStringList reads a parenthesized list of astrings, if one comes.
func readAStringList(dec *imapwire.Decoder) ([]string, bool, error) {
	var out []string
	isList, err := dec.List(func() error {
		var s string
		if !dec.ExpectAString(&s) {
			return dec.Err()
		}
		out = append(out, s)
		return nil
	})
	return out, isList, err
}

// readMetadataEntries reads entries: one entry or a list of them.
func readMetadataEntries(dec *imapwire.Decoder) ([]string, error) {
	entries, isList, err := readAStringList(dec)
	if err != nil || isList {
		return entries, err
	}
	var entry string
	if !dec.ExpectAString(&entry) {
		return nil, dec.Err()
	}
	return []string{entry}, nil
}

// parseMetadataOptions reads GETMETADATA's options (section 4.2): MAXSIZE
// n and DEPTH 0, 1 or infinity, each at most once.
func parseMetadataOptions(words []string) (maxSize int64, depth imap.MetadataDepth, err error) {
	maxSize = -1
	seen := make(map[string]bool)
	for i := 0; i < len(words); i += 2 {
		name := strings.ToUpper(words[i])
		if seen[name] {
			return 0, 0, newClientBugError("GETMETADATA option " + name + " given twice")
		}
		seen[name] = true
		if i+1 >= len(words) {
			return 0, 0, newClientBugError("GETMETADATA option " + name + " needs a value")
		}
		v := words[i+1]
		switch name {
		case "MAXSIZE":
			n, perr := strconv.ParseUint(v, 10, 32)
			if perr != nil {
				return 0, 0, newClientBugError("invalid MAXSIZE " + strconv.Quote(v))
			}
			maxSize = int64(n)
		case "DEPTH":
			switch strings.ToLower(v) {
			case "0":
				depth = imap.MetadataDepthZero
			case "1":
				depth = imap.MetadataDepthOne
			case "infinity":
				depth = imap.MetadataDepthInfinity
			default:
				return 0, 0, newClientBugError("invalid DEPTH " + strconv.Quote(v))
			}
		default:
			return 0, 0, newClientBugError("unknown GETMETADATA option " + strconv.Quote(words[i]))
		}
	}
	return maxSize, depth, nil
}
