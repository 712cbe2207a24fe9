package delivery

import (
	"bytes"
	"net/mail"
	"strings"
)

// Trace fields, as an MTA's final delivery writes them and as Dovecot's
// LMTP does: Return-Path with the envelope sender (RFC 5321 section
// 4.4: "<>" for the null sender), and Delivered-To with the recipient
// when the message is stored for exactly one (RFC 9228). With several
// recipients the stored bytes are shared and a Delivered-To would name the
// others to each of them (Bcc recipients among them), so, like Dovecot,
// none is written.
//
// Certified items get neither: M is stored byte for byte as the sender
// sent it, because H(L,r,M), signed by the recipient in the COD, is over
// those bytes, and the sender checks it against the file they sent
// (certmail verify --message). The stub is the gateway's own message,
// and a Return-Path on it would name the sender a reveal=none item hides.
//
// The fields end their lines as M's first line does, so that a message
// written with bare LFs does not get a header block of mixed endings.
func traceHeaders(raw []byte, sender, deliveredTo string) []byte {
	eol := "\r\n"
	if i := bytes.IndexByte(raw, '\n'); i >= 0 && (i == 0 || raw[i-1] != '\r') {
		eol = "\n"
	}
	var b bytes.Buffer
	b.WriteString("Return-Path: <")
	b.WriteString(oneLine(strings.Trim(sender, "<>")))
	b.WriteString(">" + eol)
	if deliveredTo != "" {
		b.WriteString("Delivered-To: ")
		b.WriteString(oneLine(strings.Trim(deliveredTo, "<>")))
		b.WriteString(eol)
	}
	return b.Bytes()
}

// maxLogField bounds what a log line repeats of a message's own fields.
const maxLogField = 200

// messageID is M's Message-ID field for the log ("" if it has none), read
// from the header block only.
func messageID(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(msg.Header.Get("Message-Id"))
	if len(id) > maxLogField {
		id = id[:maxLogField] + "…"
	}
	return id
}
