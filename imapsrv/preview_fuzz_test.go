package imapsrv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestPreviewExtract covers RFC 8970 section 3.1 on the kinds of message
// a preview is taken from.
func TestPreviewExtract(t *testing.T) {
	long := strings.Repeat("word ", 100)
	for _, tc := range []struct{ name, raw, want string }{
		{"plain", "Subject: x\r\n\r\nHello  there,\r\n\r\n\tsee you.\r\n", "Hello there, see you."},
		{"no body", "Subject: x\r\n\r\n", ""},
		{"html", "Content-Type: text/html\r\n\r\n<html><head><title>T</title><style>p{color:red}</style></head>" +
			"<body><p>Caf&eacute; &amp; more</p><script>alert(1)</script><!-- hidden --><br>next&nbsp;line</body></html>", "Café & more next line"},
		{"alternative", "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain text\r\n--b\r\n" +
			"Content-Type: text/html\r\n\r\n<p>html text</p>\r\n--b--\r\n", "plain text"},
		{"attachment first", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nattached\r\n--b\r\n" +
			"Content-Type: text/plain\r\n\r\nthe body\r\n--b--\r\n", "the body"},
		{"only an image", "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n", ""},
		{"base64 latin-1", "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\nR3L832UgYXVzIEv2bG4=\r\n", "Grüße aus Köln"},
		{"quoted-printable", "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve soft=\r\nbreak\r\n", "naïve softbreak"},
		{"long", "Subject: x\r\n\r\n" + long, strings.TrimSpace(long)[:256]},
	} {
		if got := computePreview([]byte(tc.raw)); got != tc.want {
			t.Errorf("%s: preview %q, want %q", tc.name, got, tc.want)
		}
	}
	// Nesting: found three levels down, not past previewMaxDepth (the
	// walk stops there; it cost depth times size).
	nested := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
		}
		b.WriteString("Content-Type: text/plain\r\n\r\ndeep text\r\n")
		for i := n - 1; i >= 0; i-- {
			fmt.Fprintf(&b, "--b%d--\r\n", i)
		}
		return b.String()
	}
	if got := computePreview([]byte(nested(3))); got != "deep text" {
		t.Errorf("three levels down: %q", got)
	}
	if got := computePreview([]byte(nested(previewMaxDepth + 1))); got != "" {
		t.Errorf("past previewMaxDepth: %q", got)
	}
	// 256 characters, not bytes.
	got := computePreview([]byte("Subject: x\r\n\r\n" + strings.Repeat("é", 300)))
	if utf8.RuneCountInString(got) != previewMaxChars {
		t.Errorf("preview of 300 é: %d characters", utf8.RuneCountInString(got))
	}
}

// FuzzPreview: whatever the message, the preview is valid UTF-8 of at
// most 256 characters, with no white space at its ends or doubled, and
// computing it does not panic.
func FuzzPreview(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Content-Type: text/html\r\n\r\n<p>a<b>b</b><!-- c"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := computePreview(raw)
		if !utf8.ValidString(p) || utf8.RuneCountInString(p) > previewMaxChars {
			t.Fatalf("preview %q: invalid or too long", p)
		}
		if strings.TrimSpace(p) != p || strings.Contains(p, "  ") {
			t.Fatalf("preview %q: white space not collapsed", p)
		}
	})
}
