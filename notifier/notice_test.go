package notifier

import (
	"strings"
	"testing"
	"time"
)

func TestBuildNotice(t *testing.T) {
	n := Notice{
		ID:      "rod-123",
		To:      []string{"Alice <alice@example.org>", "desk@example.org"},
		From:    "certmail <postmaster@mail.example.org>",
		Subject: "Delivered: Contract\nX-Evil: 1",
		Text:    "Bob acknowledged your item.\nLabel: cm-x\n",
		Attachments: []Attachment{
			{Name: "evidence.json", ContentType: "application/json; charset=utf-8", Data: []byte(`{"ok":true}`)},
			{Name: "cod.jws", ContentType: "application/certmail-cod+jws", Data: []byte("eyJ.eyJ.sig")},
		},
	}
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	raw, err := BuildNotice(n, now)
	if err != nil {
		t.Fatal(err)
	}
	msg := parseMessage(t, raw)
	if id, _ := msg.Header.MessageID(); id != "rod-123@mail.example.org" {
		t.Errorf("Message-ID = %q", id)
	}
	if subj, _ := msg.Header.Subject(); subj != "Delivered: Contract X-Evil: 1" {
		t.Errorf("Subject = %q", subj)
	}
	if msg.Header.Has("X-Evil") {
		t.Error("header injected through the subject")
	}
	if to, _ := msg.Header.AddressList("To"); len(to) != 2 || to[1].Address != "desk@example.org" {
		t.Errorf("To = %v", to)
	}
	if msg.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Error("no Auto-Submitted")
	}
	if !strings.Contains(msg.Text, "Bob acknowledged your item.\r\nLabel: cm-x") {
		t.Errorf("text = %q", msg.Text)
	}
	if a := msg.Attachments["evidence.json"]; string(a.Data) != `{"ok":true}` || a.ContentType != "application/json" {
		t.Errorf("evidence attachment = %+v", a)
	}
	if a := msg.Attachments["cod.jws"]; string(a.Data) != "eyJ.eyJ.sig" || a.ContentType != "application/certmail-cod+jws" {
		t.Errorf("cod attachment = %+v", a)
	}

	n.Attachments = nil
	raw, err = BuildNotice(n, now)
	if err != nil {
		t.Fatal(err)
	}
	msg = parseMessage(t, raw)
	if ct, _, _ := msg.Header.ContentType(); ct != "text/plain" {
		t.Errorf("notice without attachments is %s", ct)
	}
}

func TestNoticeValidation(t *testing.T) {
	good := Notice{ID: "a", To: []string{"a@example.org"}, From: "b@example.org", Subject: "s", Text: "t"}
	cases := map[string]func(n *Notice){
		"no ID":           func(n *Notice) { n.ID = "" },
		"ID with slash":   func(n *Notice) { n.ID = "a/b" },
		"ID too long":     func(n *Notice) { n.ID = strings.Repeat("a", 129) },
		"no recipients":   func(n *Notice) { n.To = nil },
		"bad recipient":   func(n *Notice) { n.To = []string{"no body@"} },
		"control in name": func(n *Notice) { n.To = []string{"bob\nBcc: x"} },
		"bad sender":      func(n *Notice) { n.From = "" },
		"bad attachment":  func(n *Notice) { n.Attachments = []Attachment{{Name: "x", ContentType: "no type"}} },
		"unnamed":         func(n *Notice) { n.Attachments = []Attachment{{ContentType: "text/plain"}} },
		"unknown kind":    func(n *Notice) { n.Kind = "pigeon" },
		"webhook no URL":  func(n *Notice) { n.Kind = KindWebhook; n.Payload = []byte(`{}`) },
		"webhook no JSON": func(n *Notice) { n.Kind = KindWebhook; n.URL = "http://x"; n.Payload = []byte(`{`) },
	}
	for name, edit := range cases {
		n := good
		edit(&n)
		if err := n.validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	if err := good.validate(); err != nil {
		t.Error(err)
	}
	if _, err := BuildNotice(Notice{ID: "w", Kind: KindWebhook, URL: "http://x", Payload: []byte("{}")}, time.Now()); err == nil {
		t.Error("built a webhook notice as mail")
	}
}

// TestBuildNoticeToAccount: a receipt put straight into a local mailbox
// may be addressed to a bare account name.
func TestBuildNoticeToAccount(t *testing.T) {
	for account, want := range map[string]string{
		"alice":     "alice:;",
		"bob smith": `"bob smith":;`,
		"jürgen":    "=?utf-8?q?j=C3=BCrgen?=:;",
	} {
		raw, err := BuildNotice(Notice{ID: "r", To: []string{account}, From: "postmaster@mail.example.org", Subject: "s", Text: "t"}, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", account, err)
		}
		msg := parseMessage(t, raw)
		if got := msg.Header.Get("To"); got != want {
			t.Errorf("To for %q = %q, want %q", account, got, want)
		}
	}
}
