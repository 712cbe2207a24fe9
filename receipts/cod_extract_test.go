package receipts

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"
)

// buildMessage writes a message with go-message: a text part and
// optionally an attachment.
func buildMessage(t *testing.T, text, attachType, attachBody string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var h mail.Header
	h.SetSubject("COD")
	h.SetAddressList("From", []*mail.Address{{Address: "bob@example.org"}})
	mw, err := mail.CreateWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	var th mail.InlineHeader
	th.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	w, err := mw.CreateSingleInline(th)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(text))
	w.Close()
	if attachType != "" {
		var ah mail.AttachmentHeader
		ah.SetContentType(attachType, nil)
		ah.SetFilename("cod.jws")
		w, err := mw.CreateAttachment(ah)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(attachBody))
		w.Close()
	}
	mw.Close()
	return buf.Bytes()
}

func TestExtractCOD(t *testing.T) {
	it := newTestItem(t)
	cod := it.sign(t, DecisionCOD)
	wrapped := cod[:60] + "\r\n" + cod[60:120] + "\r\n" + cod[120:] + "\r\n"
	cases := []struct {
		name string
		raw  []byte
	}{
		{"bare", []byte(cod)},
		{"bare with white space", []byte("\r\n  " + cod + "\n\n")},
		{"in text", []byte("Here is my COD:\n\n" + cod + "\n\n-- \nBob\n")},
		{"in text, first line has a colon", []byte("COD: " + cod + "\n")},
		{"header only message", []byte("Subject: cod\r\n\r\n" + cod + "\r\n")},
		{"quoted-printable text part", buildMessage(t, "signed:\n"+cod+"\n", "", "")},
		{"application/jose attachment", buildMessage(t, "see attachment", "application/jose", cod)},
		{"certmail-cod+jws attachment", buildMessage(t, "", "application/certmail-cod+jws", cod)},
		{"wrapped in attachment", buildMessage(t, "see attachment", "application/jose", wrapped)},
		{"same COD twice", buildMessage(t, cod, "application/jose", cod)},
		{"single-part application/jose", []byte("Content-Type: application/jose\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString([]byte(cod)) + "\r\n")},
		{"unknown charset", []byte("Content-Type: text/plain; charset=x-klingon\r\n\r\n" + cod + "\r\n")},
	}
	for _, c := range cases {
		got, err := ExtractCOD(c.raw)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != cod {
			t.Errorf("%s: got %q", c.name, got)
		}
	}
}

func TestExtractCODErrors(t *testing.T) {
	it := newTestItem(t)
	cod := it.sign(t, DecisionCOD)
	refusal := it.sign(t, DecisionRefusal)
	other := craftJWS(it.priv, `{"alg":"EdDSA","typ":"JWT"}`, `{}`)
	cases := []struct {
		name string
		raw  []byte
		is   error
		want string
	}{
		{"empty", nil, ErrNoCOD, "no COD found"},
		{"text", []byte("I accept."), ErrNoCOD, "no COD found"},
		{"message without COD", buildMessage(t, "hello", "application/pdf", "%PDF"), ErrNoCOD, "no COD found"},
		{"two CODs", buildMessage(t, cod+"\n"+refusal, "", ""), ErrMalformedCOD, "found 2 different CODs"},
		{"COD in text, other in attachment", buildMessage(t, cod, "application/jose", refusal), ErrMalformedCOD, "found 2 different CODs"},
		{"a JWT, not a COD", []byte(other), ErrMalformedCOD, "protected header: missing kid"},
		{"a JWT in a message", buildMessage(t, "token "+other, "", ""), ErrMalformedCOD, "not a valid COD"},
	}
	for _, c := range cases {
		_, err := ExtractCOD(c.raw)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error = %v, want %v containing %q", c.name, err, c.is, c.want)
		}
	}
}

func TestExtractCODTooManyParts(t *testing.T) {
	it := newTestItem(t)
	cod := it.sign(t, DecisionCOD)
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=X\r\n\r\n")
	for range maxExtractParts + 5 {
		b.WriteString("--X\r\nContent-Type: text/plain\r\n\r\nnothing\r\n")
	}
	b.WriteString("--X\r\nContent-Type: text/plain\r\n\r\n" + cod + "\r\n--X--\r\n")
	// The walk stops at the limit; the raw-text fallback still finds
	// the COD, which is what a user would expect.
	got, err := ExtractCOD([]byte(b.String()))
	if err != nil || got != cod {
		t.Errorf("ExtractCOD = %q, %v", got, err)
	}
}
