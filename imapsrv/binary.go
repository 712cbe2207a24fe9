package imapsrv

// BINARY (RFC 3516): FETCH BINARY[section]<partial>, BINARY.PEEK and
// BINARY.SIZE decode a part's content transfer encoding on the server
// (go-imap's imapserver.DecodeBinarySection, with go-message's decoders);
// APPEND takes a message as a literal8 (~{n}), the only way a message
// with NUL bytes gets in (RFC 3516 section 4.4).
//
// A certified stub is the message its mailbox holds, so BINARY of a stub
// decodes the stub's own bytes; the held message is in no mailbox and no
// section number reaches it.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// binarySections decodes the BINARY sections and BINARY.SIZE sizes o asks
// for, in o's order. An error is the command's answer (NO [UNKNOWN-CTE]).
func binarySections(raw []byte, o *imap.FetchOptions) ([][]byte, []uint32, error) {
	if len(o.BinarySection) == 0 && len(o.BinarySectionSize) == 0 {
		return nil, nil, nil
	}
	bins := make([][]byte, len(o.BinarySection))
	for i, bs := range o.BinarySection {
		b, err := binarySection(raw, bs.Part, bs.Partial)
		if err != nil {
			return nil, nil, err
		}
		bins[i] = b
	}
	sizes := make([]uint32, len(o.BinarySectionSize))
	for i, bss := range o.BinarySectionSize {
		b, err := binarySection(raw, bss.Part, nil)
		if err != nil {
			return nil, nil, err
		}
		sizes[i] = uint32(len(b))
	}
	return bins, sizes, nil
}

// binarySection is one section of raw, decoded, cut to partial. A part
// deeper than maxMIMEDepth, or one that does not exist, is empty.
func binarySection(raw []byte, part []int, partial *imap.SectionPartial) ([]byte, error) {
	if len(part) > maxMIMEDepth+1 {
		return nil, nil
	}
	item := &imap.FetchItemBinarySection{Part: part, Partial: partial}
	b, err := imapserver.DecodeBinarySection(bytes.NewReader(raw), item)
	if err != nil {
		return nil, err
	}
	if b == nil {
		// A message with broken header fields: retried with its
		// well-formed ones, as for BODY[] sections (fetch.go).
		if p := parseable(raw); len(p) != len(raw) || !bytes.Equal(p, raw) {
			return imapserver.DecodeBinarySection(bytes.NewReader(p), item)
		}
	}
	return b, nil
}

// errNUL is the answer to a message with NUL bytes in a plain literal:
// a literal is CHAR8, which has no NUL (RFC 9051 section 9); binary data
// comes as a literal8 (RFC 3516 section 4.4).
var errNUL = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
	Text: "NUL bytes in a literal: send binary data as a literal8 (~{n}, RFC 3516)"}

// errBinaryUnstorable answers a literal8 message whose NUL bytes are not
// all in parts that can be re-encoded (RFC 3516 section 4.4: the server
// that cannot store the message as it is refuses it with UNKNOWN-CTE).
var errBinaryUnstorable = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnknownCTE,
	Text: "NUL bytes outside a MIME body part that can be re-encoded"}

// storableBinary returns raw, a message that came as a literal8, in a
// form every client can read: each body part holding NUL bytes is
// re-encoded as base64 (RFC 3516 section 4.4 lets the server convert the
// message; Dovecot does the same). BINARY[part] still gives its bytes
// back. A message without NUL bytes is stored as it came. The structure
// is rebuilt from the parsed parts, so a converted multipart loses its
// preamble and epilogue.
func storableBinary(raw []byte) ([]byte, error) {
	if bytes.IndexByte(raw, 0) < 0 {
		return raw, nil
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, errBinaryUnstorable
	}
	var out bytes.Buffer
	if err := encodeEntity(&out, h, br, 0); err != nil {
		return nil, errBinaryUnstorable
	}
	if bytes.IndexByte(out.Bytes(), 0) >= 0 {
		return nil, errBinaryUnstorable
	}
	return out.Bytes(), nil
}

// encodeEntity writes the entity h, body to w with its NUL-holding leaf
// parts in base64.
func encodeEntity(w *bytes.Buffer, h textproto.Header, body io.Reader, depth int) error {
	if depth > maxMIMEDepth {
		return errors.New("nested too deeply")
	}
	mh := gomessage.Header{Header: h}
	mediaType, params, _ := mh.ContentType()
	cte := strings.ToLower(strings.TrimSpace(mh.Get("Content-Transfer-Encoding")))
	identity := cte == "" || cte == "7bit" || cte == "8bit" || cte == "binary"
	switch {
	case strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "":
		if err := textproto.WriteHeader(w, h); err != nil {
			return err
		}
		boundary := params["boundary"]
		mr := textproto.NewMultipartReader(body, boundary)
		for n := 0; ; n++ {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("part %d: %w", n+1, err)
			}
			if n > 0 {
				w.WriteString("\r\n")
			}
			w.WriteString("--" + boundary + "\r\n")
			if err := encodeEntity(w, p.Header, p, depth+1); err != nil {
				return err
			}
		}
		w.WriteString("\r\n--" + boundary + "--\r\n")
		return nil
	case (mediaType == "message/rfc822" || mediaType == "message/global") && identity:
		if err := textproto.WriteHeader(w, h); err != nil {
			return err
		}
		br := bufio.NewReader(body)
		inner, err := textproto.ReadHeader(br)
		if err != nil {
			return err
		}
		return encodeEntity(w, inner, br, depth+1)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if !identity || bytes.IndexByte(data, 0) < 0 {
		if err := textproto.WriteHeader(w, h); err != nil {
			return err
		}
		w.Write(data)
		return nil
	}
	h.Set("Content-Transfer-Encoding", "base64")
	if err := textproto.WriteHeader(w, h); err != nil {
		return err
	}
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 { // RFC 2045 section 6.8: lines of at most 76
		w.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	w.WriteString(enc + "\r\n")
	return nil
}
