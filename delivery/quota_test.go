package delivery

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// TestLMTPOverQuota: a recipient over quota gets 552 5.2.2 (RFC 3463
// "mailbox full") on its own; the other recipient of the same message
// gets it; the refused one's mailbox and usage are unchanged.
func TestLMTPOverQuota(t *testing.T) {
	st := openStore(t, "alice", "bob")
	limit := int64(2000)
	if err := st.SetQuota("alice", &limit, nil); err != nil {
		t.Fatal(err)
	}
	addr, _ := startLMTP(t, st, Options{}, LMTPOptions{})
	send := func(body string) error {
		c := dialLMTP(t, addr)
		if err := c.Mail("s@example.net", nil); err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{"alice@example.org", "bob@example.org"} {
			if err := c.Rcpt(r, nil); err != nil {
				t.Fatal(err)
			}
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "Subject: q\r\n\r\n"+body)
		_, err = w.CloseWithLMTPResponse()
		return err
	}
	if err := send(strings.Repeat("a", 1000) + "\r\n"); err != nil {
		t.Fatalf("first message: %v", err)
	}
	err := send(strings.Repeat("b", 1000) + "\r\n")
	var lerr smtp.LMTPDataError
	if !errors.As(err, &lerr) || lerr["alice@example.org"] == nil || lerr["bob@example.org"] != nil {
		t.Fatalf("second message: want an error for alice alone, got %v", err)
	}
	wantSMTPCode(t, lerr["alice@example.org"], 552, smtp.EnhancedCode{5, 2, 2})
	if a, b := len(inbox(t, st, "alice")), len(inbox(t, st, "bob")); a != 1 || b != 2 {
		t.Fatalf("alice has %d messages, bob %d; want 1 and 2", a, b)
	}
	if q, _ := st.Quota("alice"); q.MessagesUsed != 1 || q.StorageUsed > limit {
		t.Fatalf("alice's usage after the refusal: %+v", q)
	}
}
