package imapsrv

import (
	"bytes"
	"html"
	"io"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"

	"certmail/mailbox"
)

// PREVIEW (RFC 8970): a short text of the message's body, computed at
// delivery with the envelope (computeSummary) and kept in the stored
// summary, so that a client listing a mailbox with previews reads no
// message. A message stored before previews existed has a summary without
// one: its preview is computed from the message on its first FETCH and
// kept in memory (previewCache); FETCH PREVIEW (LAZY) answers NIL for it
// until then (section 3.2: the client asks again without LAZY when it
// wants the text at once).
//
// A certified stub is a message of its own, so its preview is the stub's
// text: M's bytes are never read for it.

const (
	// previewMaxChars is RFC 8970 section 3.1's bound: "no more than 256
	// characters".
	previewMaxChars = 256
	// previewVersion marks a summary whose Preview was computed (an empty
	// preview is a valid one: a message without text).
	previewVersion = 1
	// previewScan bounds how much of a part is read: HTML may put long
	// style sheets before its first word.
	previewScan = 256 << 10
	// previewMaxDepth bounds the multipart nesting a preview is looked
	// for in: mail clients nest three or four levels (mixed, related,
	// alternative).
	previewMaxDepth = 8
)

// computePreview returns the preview of a message (RFC 8970 section 3.1):
// the text of its first text/plain or text/html part that is not an
// attachment, transfer- and charset-decoded, HTML markup removed,
// white space collapsed, at most 256 characters; "" when it has no text.
func computePreview(raw []byte) string {
	e, _ := gomessage.Read(bytes.NewReader(parseable(raw)))
	if e == nil {
		return ""
	}
	text, isHTML, ok, _ := previewPart(e, 0)
	if !ok {
		return ""
	}
	if isHTML {
		text = stripHTML(text)
	}
	return collapsePreview(text)
}

// previewPart finds the first part that can give a preview, depth first.
// Not Entity.Walk: it has no depth limit (see maxMIMEDepth). A message
// nested deeper than previewMaxDepth gives no preview: the walk stops
// there rather than read past every deeper part level by level, which
// cost depth times size (TestFetchDeepMessage).
func previewPart(e *gomessage.Entity, depth int) (text string, isHTML, ok, stop bool) {
	if mr := e.MultipartReader(); mr != nil {
		if depth >= previewMaxDepth {
			return "", false, false, true
		}
		for {
			// An unknown charset still gives a readable part; anything
			// else (the end, a broken part) ends the walk.
			p, _ := mr.NextPart()
			if p == nil {
				return "", false, false, false
			}
			if text, isHTML, ok, stop := previewPart(p, depth+1); ok || stop {
				return text, isHTML, ok, stop
			}
		}
	}
	if disp, _, _ := e.Header.ContentDisposition(); strings.EqualFold(disp, "attachment") {
		return "", false, false, false
	}
	mt, _, _ := e.Header.ContentType()
	switch mt {
	case "", "text/plain":
	case "text/html":
		isHTML = true
	default:
		return "", false, false, false
	}
	b, _ := io.ReadAll(io.LimitReader(e.Body, previewScan))
	return string(b), isHTML, true, false
}

// collapsePreview turns runs of white space and control characters into
// one space, trims the ends and keeps at most previewMaxChars characters
// (RFC 8970 section 3.1 asks for text meant to be shown, without the
// layout of the original).
func collapsePreview(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(min(len(s), previewMaxChars*4))
	n := 0
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u200b' || r == '\ufeff' {
			space = b.Len() > 0
			continue
		}
		if space {
			if n+1 >= previewMaxChars {
				break
			}
			b.WriteByte(' ')
			n++
			space = false
		}
		if n >= previewMaxChars {
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// stripHTML returns the text of an HTML document: tags and comments
// dropped, the content of elements that are not shown (head, style,
// script, title, template) dropped, block elements separated by white
// space, character references decoded. It stops once it has enough text
// for a preview.
func stripHTML(s string) string {
	var out strings.Builder
	var skipUntil string // the closing tag that ends hidden content
	for len(s) > 0 && out.Len() < previewMaxChars*8 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			if skipUntil == "" {
				out.WriteString(html.UnescapeString(s))
			}
			break
		}
		if skipUntil == "" {
			out.WriteString(html.UnescapeString(s[:i]))
		}
		s = s[i:]
		if strings.HasPrefix(s, "<!--") {
			end := strings.Index(s[4:], "-->")
			if end < 0 {
				break
			}
			s = s[4+end+3:]
			continue
		}
		end := strings.IndexByte(s, '>')
		if end < 0 {
			break
		}
		tag := s[1:end]
		s = s[end+1:]
		name := strings.ToLower(tagName(tag))
		if skipUntil != "" {
			if name == "/"+skipUntil {
				skipUntil = ""
			}
			continue
		}
		switch name {
		case "head", "style", "script", "title", "template":
			if !strings.HasSuffix(tag, "/") {
				skipUntil = name
			}
		}
		// Any tag may separate words (<br>, <p>, <td>); an extra space
		// collapses.
		out.WriteByte(' ')
	}
	return out.String()
}

// tagName is the name of a tag's inside ("/p", "a", "br/").
func tagName(tag string) string {
	end := strings.IndexFunc(tag, func(r rune) bool { return unicode.IsSpace(r) || r == '>' })
	if end >= 0 {
		tag = tag[:end]
	}
	return strings.TrimSuffix(tag, "/")
}

// previewCacheMax bounds the previews computed for messages stored
// without one: at most 256 characters each, so a few MB.
const previewCacheMax = 20_000

// previewCache keeps the previews computed on FETCH for messages whose
// summary has none, by blob (a blob never changes). When full it starts
// again empty, which is simple and bounds it.
type previewCache struct {
	mu sync.Mutex
	m  map[uint64]string
}

func (c *previewCache) get(blob uint64) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[blob]
	return p, ok
}

func (c *previewCache) put(blob uint64, p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= previewCacheMax {
		c.m = make(map[uint64]string)
	}
	c.m[blob] = p
}

// preview returns a message's PREVIEW: from its summary (sum, if the
// caller decoded it already), else computed from the message unless lazy
// (ok false: NIL, RFC 8970 section 3.2). raw is the whole message if the
// caller has read it.
func (sess *session) preview(m *mailbox.Message, sum *summary, raw []byte, lazy bool) (text string, ok bool, err error) {
	if sum == nil {
		if b, err := sess.srv.store.Summary(m.Blob); err != nil {
			return "", false, err
		} else if s, err := decodeSummary(b); err == nil {
			sum = s
		}
	}
	if sum != nil && sum.PreviewVersion == previewVersion {
		return sum.Preview, true, nil
	}
	if p, ok := sess.srv.previews.get(m.Blob); ok {
		return p, true, nil
	}
	if lazy {
		return "", false, nil
	}
	if raw == nil {
		if raw, err = sess.srv.store.Raw(m.Blob); err != nil {
			return "", false, err
		}
	}
	p := computePreview(raw)
	if !utf8.ValidString(p) {
		p = ""
	}
	sess.srv.previews.put(m.Blob, p)
	return p, true, nil
}
