package imapsrv

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// maxMIMEDepth bounds how deeply nested multiparts and message/rfc822
// parts are looked into. go-message nests one reader per level, so the
// cost of parsing grows with depth times size: imapserver's
// ExtractBodyStructure took 8 s on a 340 kB message of 5,000 nested
// multiparts and almost 4 minutes on 1.4 MB, at delivery, inside the
// store's write transaction, holding up every other delivery. Real mail
// nests a handful of levels; deeper parts are shown as opaque
// application/octet-stream, and SEARCH and FETCH of parts stop there too.
const maxMIMEDepth = 32

// extractBodyStructure is imapserver.ExtractBodyStructure with a depth
// limit (see maxMIMEDepth).
func extractBodyStructure(raw []byte) imap.BodyStructure {
	br := bufio.NewReader(bytes.NewReader(raw))
	header, _ := textproto.ReadHeader(br)
	return bodyStructure(header, br, 0)
}

func bodyStructure(rawHeader textproto.Header, r io.Reader, depth int) imap.BodyStructure {
	header := gomessage.Header{Header: rawHeader}
	mediaType, typeParams, _ := header.ContentType()
	primaryType, subType, _ := strings.Cut(mediaType, "/")

	if primaryType == "multipart" && depth < maxMIMEDepth {
		bs := &imap.BodyStructureMultiPart{Subtype: subType}
		mr := textproto.NewMultipartReader(r, typeParams["boundary"])
		for {
			part, _ := mr.NextPart()
			if part == nil {
				break
			}
			bs.Children = append(bs.Children, bodyStructure(part.Header, part, depth+1))
		}
		bs.Extended = &imap.BodyStructureMultiPartExt{
			Params:      typeParams,
			Disposition: contentDisposition(header),
			Language:    contentLanguage(header),
			Location:    header.Get("Content-Location"),
		}
		return bs
	}
	if primaryType == "multipart" {
		// Too deep: one opaque part.
		primaryType, subType, typeParams = "application", "octet-stream", nil
	}

	body, _ := io.ReadAll(r)
	bs := &imap.BodyStructureSinglePart{
		Type:        primaryType,
		Subtype:     subType,
		Params:      typeParams,
		ID:          header.Get("Content-Id"),
		Description: header.Get("Content-Description"),
		Encoding:    header.Get("Content-Transfer-Encoding"),
		Size:        uint32(len(body)),
	}
	if mediaType == "message/rfc822" || mediaType == "message/global" {
		br := bufio.NewReader(bytes.NewReader(body))
		childHeader, _ := textproto.ReadHeader(br)
		child := imap.BodyStructure(&imap.BodyStructureSinglePart{Type: "application", Subtype: "octet-stream"})
		if depth < maxMIMEDepth {
			child = bodyStructure(childHeader, br, depth+1)
		}
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      extractEnvelope(childHeader),
			BodyStructure: child,
			NumLines:      int64(bytes.Count(body, []byte("\n"))),
		}
	}
	if primaryType == "text" {
		bs.Text = &imap.BodyStructureText{NumLines: int64(bytes.Count(body, []byte("\n")))}
	}
	bs.Extended = &imap.BodyStructureSinglePartExt{
		Disposition: contentDisposition(header),
		Language:    contentLanguage(header),
		Location:    header.Get("Content-Location"),
	}
	return bs
}

func contentDisposition(header gomessage.Header) *imap.BodyStructureDisposition {
	disp, params, _ := header.ContentDisposition()
	if disp == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: disp, Params: params}
}

func contentLanguage(header gomessage.Header) []string {
	v := header.Get("Content-Language")
	if v == "" {
		return nil
	}
	l := strings.Split(v, ",")
	for i, lang := range l {
		l[i] = strings.TrimSpace(lang)
	}
	return l
}
