package notifier

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
)

// Kind says how a notice travels.
type Kind string

const (
	KindMail    Kind = "mail"
	KindWebhook Kind = "webhook"
)

// Notice is one message to a sender or an operator: a mail through the
// relay, or a JSON POST to a configured webhook.
type Notice struct {
	// ID identifies the notice for deduplication: a second Enqueue of an
	// ID still queued is a no-op, and it becomes the mail's Message-ID or
	// the webhook's X-Certmail-Delivery. Empty means Enqueue picks one.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"` // "" means KindMail
	// Ref names what the notice is about (a certified item's label), so
	// that List finds an item's notices, sent ones included, without
	// reading every notice.
	Ref string `json:"ref,omitempty"`

	// Mail. To holds RFC 5322 addresses; BuildNotice also takes bare
	// account names, for messages put straight into a local mailbox, but
	// the outbox, which relays by SMTP, does not.
	To          []string     `json:"to,omitempty"`
	From        string       `json:"from,omitempty"`
	Subject     string       `json:"subject,omitempty"`
	Text        string       `json:"text,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	// Raw, if set, is sent as the message instead of one built from
	// Subject, Text and Attachments: a forwarded message goes out as the
	// original bytes with Resent-* fields prepended.
	Raw []byte `json:"raw,omitempty"`

	// Webhook: URL must be one of the Outbox's configured webhooks, whose
	// secret signs the POST.
	URL     string          `json:"url,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Attachment is a file attached to a mail notice, e.g. an evidence bundle.
type Attachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Data        []byte `json:"data"`
}

const maxIDLen = 128

// NewNoticeID returns a random notice ID.
func NewNoticeID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("notice ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// checkID accepts IDs that are safe in store keys and in a Message-ID.
func checkID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("notice ID %q: want 1 to %d characters", id, maxIDLen)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+=", r)) {
			return fmt.Errorf("notice ID %q: character %q not allowed (want letters, digits and ._-+=)", id, r)
		}
	}
	return nil
}

func (n *Notice) kind() Kind {
	if n.Kind == "" {
		return KindMail
	}
	return n.Kind
}

// validate checks a notice before it is queued, so that mistakes surface
// in the caller's transaction rather than as dead letters later.
func (n *Notice) validate() error {
	if err := checkID(n.ID); err != nil {
		return err
	}
	switch n.kind() {
	case KindMail:
		if len(n.To) == 0 {
			return errors.New("mail notice has no recipients")
		}
		for _, to := range n.To {
			if _, err := parseRecipient(to); err != nil {
				return err
			}
		}
		if _, err := parseAddress("from", n.From); err != nil {
			return err
		}
		for _, a := range n.Attachments {
			if a.Name == "" || a.ContentType == "" {
				return fmt.Errorf("attachment %q needs a name and a content type", a.Name)
			}
			if _, _, err := mime.ParseMediaType(a.ContentType); err != nil {
				return fmt.Errorf("attachment %q: content type %q: %w", a.Name, a.ContentType, err)
			}
		}
	case KindWebhook:
		if n.URL == "" {
			return errors.New("webhook notice has no URL")
		}
		if len(n.Payload) == 0 || !json.Valid(n.Payload) {
			return errors.New("webhook notice payload is not valid JSON")
		}
	default:
		return fmt.Errorf("notice kind %q: want %q or %q", n.Kind, KindMail, KindWebhook)
	}
	return nil
}

// BuildNotice renders a mail notice as a MIME message dated now.
func BuildNotice(n Notice, now time.Time) ([]byte, error) {
	if n.kind() != KindMail {
		return nil, fmt.Errorf("build notice %s: a %s notice is not a mail", n.ID, n.kind())
	}
	if err := n.validate(); err != nil {
		return nil, fmt.Errorf("build notice: %w", err)
	}
	from, _ := parseAddress("from", n.From)
	to := make([]recipient, len(n.To))
	for i, s := range n.To {
		to[i], _ = parseRecipient(s)
	}
	var h mail.Header
	h.SetDate(now)
	h.SetAddressList("From", []*mail.Address{from})
	h.Set("To", recipientsHeader(to))
	h.SetSubject(oneLine(n.Subject))
	h.SetMessageID(n.ID + "@" + addressDomain(from.Address))
	h.Set("Auto-Submitted", "auto-generated")
	h.Set("X-Auto-Response-Suppress", "All")
	var buf bytes.Buffer
	if err := writeMultipart(&buf, h, []byte(n.Text), nil, n.Attachments); err != nil {
		return nil, fmt.Errorf("build notice %s: %w", n.ID, err)
	}
	return buf.Bytes(), nil
}

// writeMultipart writes a message with a text body, an optional HTML
// alternative, and attachments; with neither HTML nor attachments it is a
// single text/plain part.
func writeMultipart(w io.Writer, h mail.Header, text, html []byte, attachments []Attachment) error {
	var textHeader, htmlHeader mail.InlineHeader
	textHeader.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	htmlHeader.SetContentType("text/html", map[string]string{"charset": "utf-8"})

	if html == nil && len(attachments) == 0 {
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
		body, err := mail.CreateSingleInlineWriter(w, h)
		if err != nil {
			return err
		}
		if _, err := body.Write(text); err != nil {
			return err
		}
		return body.Close()
	}

	mw, err := mail.CreateWriter(w, h)
	if err != nil {
		return err
	}
	if html == nil {
		if err := writePart(mw.CreateSingleInline(textHeader))(text); err != nil {
			return err
		}
	} else {
		iw, err := mw.CreateInline()
		if err != nil {
			return err
		}
		if err := writePart(iw.CreatePart(textHeader))(text); err != nil {
			return err
		}
		if err := writePart(iw.CreatePart(htmlHeader))(html); err != nil {
			return err
		}
		if err := iw.Close(); err != nil {
			return err
		}
	}
	for _, a := range attachments {
		mediaType, params, err := mime.ParseMediaType(a.ContentType)
		if err != nil {
			return fmt.Errorf("attachment %q: %w", a.Name, err)
		}
		var ah mail.AttachmentHeader
		ah.SetContentType(mediaType, params)
		ah.SetFilename(a.Name)
		if err := writePart(mw.CreateAttachment(ah))(a.Data); err != nil {
			return fmt.Errorf("attachment %q: %w", a.Name, err)
		}
	}
	return mw.Close()
}

// writePart writes data to a part just created and closes it.
func writePart(part io.WriteCloser, err error) func([]byte) error {
	return func(data []byte) error {
		if err != nil {
			return err
		}
		if _, err := part.Write(data); err != nil {
			part.Close()
			return err
		}
		return part.Close()
	}
}
