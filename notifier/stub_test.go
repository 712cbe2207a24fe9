package notifier

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"certmail/receipts"
)

// parsedMessage is a message read back with go-message.
type parsedMessage struct {
	Header      mail.Header
	Text, HTML  string
	Attachments map[string]attachmentPart
}

type attachmentPart struct {
	ContentType string
	Data        []byte
}

func parseMessage(t *testing.T, raw []byte) parsedMessage {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, raw)
	}
	p := parsedMessage{Header: r.Header, Attachments: map[string]attachmentPart{}}
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		body, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch h := part.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := h.ContentType()
			switch ct {
			case "text/plain":
				p.Text = string(body)
			case "text/html":
				p.HTML = string(body)
			default:
				t.Errorf("unexpected inline part %s", ct)
			}
		case *mail.AttachmentHeader:
			name, _ := h.Filename()
			ct, _, _ := h.ContentType()
			p.Attachments[name] = attachmentPart{ContentType: ct, Data: body}
		}
	}
	return p
}

const secretWord = "xylophone-sassafras-7731"

// heldItem is M: its subject, sender and body all carry the secret word.
func heldItem(t *testing.T) (label string, m []byte) {
	t.Helper()
	label, err := receipts.NewLabel()
	if err != nil {
		t.Fatal(err)
	}
	m = []byte("From: Alice " + secretWord + " <alice@example.org>\r\n" +
		"Subject: Contract " + secretWord + "\r\n" +
		"Message-ID: <" + secretWord + "@example.org>\r\n" +
		"\r\n" +
		"The " + secretWord + " terms are attached.\r\n")
	return label, m
}

func stubInfo(label string, m []byte) StubInfo {
	hash := receipts.ItemHash(label, m)
	deadline := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	return StubInfo{
		Postmaster: "certmail <postmaster@mail.example.org>",
		Gateway:    "mail.example.org",
		Label:      label,
		Hash:       hash,
		Recipient:  "bob@example.org",
		Deadline:   deadline,
		IMAPAddr:   "mail.example.org:993",
		Request:    receipts.NewCODRequest("mail.example.org", label, hash, "bob@example.org", deadline),
	}
}

var stubNow = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func TestBuildStub(t *testing.T) {
	label, m := heldItem(t)
	info := stubInfo(label, m)
	raw, err := BuildStub(info, stubNow)
	if err != nil {
		t.Fatal(err)
	}
	msg := parseMessage(t, raw)
	hash := receipts.FormatHash(info.Hash)

	h := msg.Header
	if subj, _ := h.Subject(); subj != StubSubject {
		t.Errorf("Subject = %q", subj)
	}
	checks := map[string]string{
		"Certified-Label":    label,
		"Certified-Hash":     hash,
		"Certified-Deadline": "2026-03-02T12:00:00Z",
		"Auto-Submitted":     "auto-generated",
		"To":                 "<bob@example.org>",
		"From":               `"certmail" <postmaster@mail.example.org>`,
	}
	for k, want := range checks {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if id, err := h.MessageID(); err != nil || !strings.HasSuffix(id, "@mail.example.org") {
		t.Errorf("Message-ID = %q, %v", id, err)
	}
	if d, err := h.Date(); err != nil || !d.Equal(stubNow) {
		t.Errorf("Date = %v, %v", d, err)
	}
	if ct, _, _ := h.ContentType(); ct != "multipart/mixed" {
		t.Errorf("Content-Type = %q", ct)
	}

	for name, body := range map[string]string{"text": msg.Text, "html": msg.HTML} {
		for _, want := range []string{label, hash, "Monday 2 March 2026, 12:00 UTC", "Acknowledge", "Refuse",
			"certmail sign --imap mail.example.org:993 --user bob@example.org --label " + label} {
			if !strings.Contains(body, want) {
				t.Errorf("%s part lacks %q:\n%s", name, want, body)
			}
		}
	}
	att, ok := msg.Attachments[CODRequestFilename]
	if !ok {
		t.Fatalf("no %s attachment; have %v", CODRequestFilename, msg.Attachments)
	}
	if att.ContentType != "application/json" {
		t.Errorf("attachment type %q", att.ContentType)
	}
	req, err := receipts.ParseCODRequest(att.Data)
	if err != nil {
		t.Fatal(err)
	}
	if req != info.Request {
		t.Errorf("attached request %+v, want %+v", req, info.Request)
	}
}

// TestStubLeaksNothingOfM: the secret word is everywhere in M and nowhere
// in StubInfo, so it must not be anywhere in the stub, in any encoding.
func TestStubLeaksNothingOfM(t *testing.T) {
	label, m := heldItem(t)
	raw, err := BuildStub(stubInfo(label, m), stubNow)
	if err != nil {
		t.Fatal(err)
	}
	msg := parseMessage(t, raw)
	var decoded bytes.Buffer
	decoded.Write(raw)
	decoded.WriteString(msg.Text + msg.HTML)
	for _, a := range msg.Attachments {
		decoded.Write(a.Data)
	}
	for _, needle := range []string{secretWord, "Contract", "alice", "terms are attached"} {
		if bytes.Contains(bytes.ToLower(decoded.Bytes()), bytes.ToLower([]byte(needle))) {
			t.Errorf("stub contains %q from M", needle)
		}
	}
	if len(raw) == len(m) {
		t.Error("stub has M's size")
	}
}

// TestStubRevealed shows what the reveal policy passes, escaped, and no
// header injection through it.
func TestStubRevealed(t *testing.T) {
	label, m := heldItem(t)
	info := stubInfo(label, m)
	info.From = "Alice <alice@example.org>"
	info.Subject = "Q1 <script>alert(1)</script> & more\r\nBcc: mallory@example.org"
	info.AckMailbox = "Accept"
	info.IMAPUser = "bob smith"
	raw, err := BuildStub(info, stubNow)
	if err != nil {
		t.Fatal(err)
	}
	msg := parseMessage(t, raw)
	subj, _ := msg.Header.Subject()
	want := StubSubject + " from Alice <alice@example.org>: Q1 <script>alert(1)</script> & more Bcc: mallory@example.org"
	if subj != want {
		t.Errorf("Subject = %q\nwant      %q", subj, want)
	}
	if msg.Header.Has("Bcc") {
		t.Error("revealed subject injected a Bcc header")
	}
	if strings.Contains(msg.HTML, "<script>") || !strings.Contains(msg.HTML, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more") {
		t.Errorf("HTML not escaped:\n%s", msg.HTML)
	}
	if !strings.Contains(msg.HTML, "&lt;alice@example.org&gt;") {
		t.Errorf("HTML lacks the escaped sender:\n%s", msg.HTML)
	}
	if !strings.Contains(msg.Text, "From:     Alice <alice@example.org>") || !strings.Contains(msg.Text, `"Accept" folder`) {
		t.Errorf("text part:\n%s", msg.Text)
	}
	if !strings.Contains(msg.Text, "--user 'bob smith' --label") {
		t.Errorf("user not shell-quoted:\n%s", msg.Text)
	}
}

func TestBuildStubRejects(t *testing.T) {
	label, m := heldItem(t)
	other, _ := receipts.NewLabel()
	cases := map[string]func(i *StubInfo){
		"bad label":          func(i *StubInfo) { i.Label = "x" },
		"no gateway":         func(i *StubInfo) { i.Gateway = "" },
		"bad postmaster":     func(i *StubInfo) { i.Postmaster = "not an address" },
		"no recipient":       func(i *StubInfo) { i.Recipient = "" },
		"request label":      func(i *StubInfo) { i.Request.Label = other },
		"request hash":       func(i *StubInfo) { i.Request.Hash = receipts.FormatHash([32]byte{}) },
		"request of gateway": func(i *StubInfo) { i.Request.Gateway = "elsewhere" },
	}
	for name, edit := range cases {
		info := stubInfo(label, m)
		edit(&info)
		if _, err := BuildStub(info, stubNow); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestStubWithoutDeadline(t *testing.T) {
	label, m := heldItem(t)
	info := stubInfo(label, m)
	info.Deadline = time.Time{}
	raw, err := BuildStub(info, stubNow)
	if err != nil {
		t.Fatal(err)
	}
	msg := parseMessage(t, raw)
	if msg.Header.Has("Certified-Deadline") || !strings.Contains(msg.Text, "Deadline: none") {
		t.Errorf("deadline shown:\n%s", raw)
	}
}

// TestStubToAccount: stubs go straight into a mailbox, and accounts need
// not be mail addresses.
func TestStubToAccount(t *testing.T) {
	label, m := heldItem(t)
	info := stubInfo(label, m)
	info.Recipient = "alice"
	info.Request.Recipient = "alice"
	raw, err := BuildStub(info, stubNow)
	if err != nil {
		t.Fatal(err)
	}
	msg := parseMessage(t, raw)
	if got := msg.Header.Get("To"); got != "alice:;" {
		t.Errorf("To = %q", got)
	}
	if !strings.Contains(msg.Text, "--user alice --label "+label) {
		t.Errorf("sign command:\n%s", msg.Text)
	}
}
