package certified_test

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestAppendUnclearRequest: IMAP APPEND is a way into the store too. A
// message whose Certified-Delivery field some reader may show but
// certmail cannot read is refused with NO and the reason, as LMTP
// refuses it; a readable one (a sent copy) and ordinary mail are stored.
func TestAppendUnclearRequest(t *testing.T) {
	e := newEnv(t)
	c := e.login("alice")
	appendMsg := func(mbox, raw string) error {
		ac := c.Append(mbox, int64(len(raw)), nil)
		ac.Write([]byte(raw))
		ac.Close()
		_, err := ac.Wait()
		return err
	}
	for _, c := range []struct{ name, raw, want string }{
		{"space before colon", "Subject: x\r\nCertified-Delivery : deadline=72h\r\n\r\nbody\r\n", "whitespace between the field name"},
		{"line without colon below", "Certified-Delivery: deadline=72h\r\nno colon\r\n\r\nbody\r\n", "is not a header field"},
		{"continuation", "Subject: x\r\n Certified-Delivery: deadline=72h\r\n\r\nbody\r\n", "looks like a Certified-Delivery field"},
	} {
		err := appendMsg("INBOX", c.raw)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "CANNOT") {
			t.Errorf("%s: APPEND = %v, want NO [CANNOT] naming %q", c.name, err, c.want)
		}
	}
	for _, raw := range []string{
		"Subject: sent copy\r\nCertified-Delivery: deadline=72h\r\n\r\nbody\r\n",
		"Subject: ordinary\r\n\r\nCertified-Delivery: in the body\r\n",
	} {
		if err := appendMsg("Sent", raw); err != nil {
			t.Errorf("APPEND %q: %v", raw, err)
		}
	}
	sel, err := c.Select("Sent", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || sel.NumMessages != 2 {
		t.Fatalf("Sent holds %v messages (%v), want 2", sel, err)
	}
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 0 {
		t.Fatalf("INBOX after refused APPENDs: %+v %v", sel, err)
	}
}
