package notifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	"text/template"
	"time"

	"github.com/emersion/go-message/mail"

	"certmail/receipts"
)

// Default mailbox names a recipient moves a stub into.
const (
	DefaultAckMailbox    = "Acknowledge"
	DefaultRefuseMailbox = "Refuse"
)

// CODRequestFilename is the name of the stub's attachment that signing
// tools read.
const CODRequestFilename = "cod-request.json"

// StubInfo is everything a stub shows. It deliberately has no field for
// the held message: the stub is built from this alone, so it can leak of M
// only what the caller chose to put here (From and Subject, as the reveal
// policy allows).
type StubInfo struct {
	Postmaster string // the stub's From, e.g. "certmail <postmaster@mail.example.org>"
	Gateway    string // P, as in the COD
	Label      string // L
	// Hash is the item's commitment H(L,r,M). The salt r is deliberately
	// not here either: a stub that carried it would let B test guesses.
	Hash      [32]byte
	Recipient string    // the stub's To: B or an alternate, as an address or a bare account name
	Deadline  time.Time // T; zero when there is none

	// From and Subject of M as the reveal policy allows: empty means not
	// revealed.
	From, Subject string

	AckMailbox, RefuseMailbox string // default DefaultAckMailbox, DefaultRefuseMailbox

	// IMAPAddr ("host:port") and IMAPUser fill in the `certmail sign`
	// command shown; IMAPUser defaults to Recipient's address or name.
	IMAPAddr, IMAPUser string

	Request receipts.CODRequest // attached as cod-request.json
}

// StubSubject is the stub's subject without anything revealed.
const StubSubject = "Certified item awaiting your acknowledgement"

// stubView is what the templates see, every field already a display string.
type stubView struct {
	From, Subject          string
	Label, Hash            string
	Deadline, DeadlineISO  string
	AckMailbox, RefMailbox string
	SignCommand            string
}

// BuildStub returns the stub message for info: multipart/mixed holding a
// text and an HTML explanation (label, hash, deadline, how to acknowledge
// or refuse) and cod-request.json.
func BuildStub(info StubInfo, now time.Time) ([]byte, error) {
	if err := info.validate(); err != nil {
		return nil, fmt.Errorf("build stub: %w", err)
	}
	postmaster, _ := parseAddress("postmaster", info.Postmaster)
	to, _ := parseRecipient(info.Recipient)
	view := info.view(to.name())

	var h mail.Header
	h.SetDate(now)
	h.SetAddressList("From", []*mail.Address{postmaster})
	h.Set("To", to.header())
	h.SetSubject(stubSubject(view.From, view.Subject))
	if err := h.GenerateMessageIDWithHostname(addressDomain(postmaster.Address)); err != nil {
		return nil, fmt.Errorf("build stub: %w", err)
	}
	h.Set("Auto-Submitted", "auto-generated")
	h.Set("X-Auto-Response-Suppress", "All")
	h.Set("Certified-Label", info.Label)
	h.Set("Certified-Hash", receipts.FormatHash(info.Hash))
	if view.DeadlineISO != "" {
		h.Set("Certified-Deadline", view.DeadlineISO)
	}

	var text, html bytes.Buffer
	if err := stubText.Execute(&text, view); err != nil {
		return nil, fmt.Errorf("build stub: %w", err)
	}
	if err := stubHTML.Execute(&html, view); err != nil {
		return nil, fmt.Errorf("build stub: %w", err)
	}
	request, err := json.MarshalIndent(info.Request, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("build stub: %w", err)
	}
	request = append(request, '\n')

	var buf bytes.Buffer
	if err := writeMultipart(&buf, h, text.Bytes(), html.Bytes(), []Attachment{
		{Name: CODRequestFilename, ContentType: "application/json", Data: request},
	}); err != nil {
		return nil, fmt.Errorf("build stub: %w", err)
	}
	return buf.Bytes(), nil
}

func stubSubject(from, subject string) string {
	s := StubSubject
	if from != "" {
		s += " from " + from
	}
	if subject != "" {
		s += ": " + subject
	}
	return s
}

func (info *StubInfo) validate() error {
	if !receipts.ValidLabel(info.Label) {
		return fmt.Errorf("label %q is not a certmail label", info.Label)
	}
	if info.Gateway == "" {
		return errors.New("gateway is empty")
	}
	if _, err := parseAddress("postmaster", info.Postmaster); err != nil {
		return err
	}
	if _, err := parseRecipient(info.Recipient); err != nil {
		return err
	}
	// The attached request must ask for a COD on this very item, or B
	// would sign something other than what the stub shows.
	r := info.Request
	if r.Label != info.Label || r.Hash != receipts.FormatHash(info.Hash) || r.Gateway != info.Gateway {
		return fmt.Errorf("COD request (gateway %q, label %q, hash %s) does not match the stub (gateway %q, label %q, hash %s)",
			r.Gateway, r.Label, r.Hash, info.Gateway, info.Label, receipts.FormatHash(info.Hash))
	}
	return nil
}

func (info *StubInfo) view(recipientName string) stubView {
	v := stubView{
		From:       oneLine(info.From),
		Subject:    oneLine(info.Subject),
		Label:      info.Label,
		Hash:       receipts.FormatHash(info.Hash),
		Deadline:   "none",
		AckMailbox: oneLine(info.AckMailbox),
		RefMailbox: oneLine(info.RefuseMailbox),
	}
	if !info.Deadline.IsZero() {
		d := info.Deadline.UTC().Truncate(time.Second)
		v.DeadlineISO = d.Format(time.RFC3339)
		v.Deadline = d.Format("Monday 2 January 2006, 15:04 UTC")
	}
	if v.AckMailbox == "" {
		v.AckMailbox = DefaultAckMailbox
	}
	if v.RefMailbox == "" {
		v.RefMailbox = DefaultRefuseMailbox
	}
	addr := oneLine(info.IMAPAddr)
	if addr == "" {
		addr = "HOST:PORT"
	}
	user := oneLine(info.IMAPUser)
	if user == "" {
		user = recipientName
	}
	v.SignCommand = "certmail sign --imap " + shellQuote(addr) + " --user " + shellQuote(user) + " --label " + info.Label
	return v
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain
// word characters, so the command shown can be pasted as is.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var stubText = template.Must(template.New("stub.txt").Parse(`A certified item is waiting for you. You will see it once you acknowledge it.
{{if .From}}
  From:     {{.From}}{{end}}{{if .Subject}}
  Subject:  {{.Subject}}{{end}}
  Label:    {{.Label}}
  Hash:     {{.Hash}}
  Deadline: {{.Deadline}}

Acknowledging signs a Certificate of Delivery for this label and hash,
which the sender receives as proof that the item was made available to you.

To acknowledge it, move or copy this message into the "{{.AckMailbox}}" folder.
To refuse it, move or copy this message into the "{{.RefMailbox}}" folder.

Or, to sign with your own key, run:

    {{.SignCommand}}

The hash lets you check the item once it is released: it is SHA-256 over
the label's length (4 bytes, big-endian), the label, the length of a
random salt (4 bytes), the salt, and the message. The gateway keeps the
salt with the message and releases both together, so the hash tells
nothing about the message before then.
The attached cod-request.json holds these details for signing tools.
`))

var stubHTML = htmltemplate.Must(htmltemplate.New("stub.html").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Certified item</title></head>
<body>
<p>A certified item is waiting for you. You will see it once you acknowledge it.</p>
<table>
{{if .From}}<tr><th align="left">From</th><td>{{.From}}</td></tr>
{{end}}{{if .Subject}}<tr><th align="left">Subject</th><td>{{.Subject}}</td></tr>
{{end}}<tr><th align="left">Label</th><td><code>{{.Label}}</code></td></tr>
<tr><th align="left">Hash</th><td><code>{{.Hash}}</code></td></tr>
<tr><th align="left">Deadline</th><td>{{.Deadline}}</td></tr>
</table>
<p>Acknowledging signs a Certificate of Delivery for this label and hash, which the sender receives as proof that the item was made available to you.</p>
<ul>
<li>To <strong>acknowledge</strong> it, move or copy this message into the &ldquo;{{.AckMailbox}}&rdquo; folder.</li>
<li>To <strong>refuse</strong> it, move or copy this message into the &ldquo;{{.RefMailbox}}&rdquo; folder.</li>
</ul>
<p>Or, to sign with your own key, run:</p>
<pre>{{.SignCommand}}</pre>
<p>The hash lets you check the item once it is released: it is SHA-256 over the label&rsquo;s length (4 bytes, big-endian), the label, the length of a random salt (4 bytes), the salt, and the message. The gateway keeps the salt with the message and releases both together, so the hash tells nothing about the message before then. The attached <code>cod-request.json</code> holds these details for signing tools.</p>
</body></html>
`))
