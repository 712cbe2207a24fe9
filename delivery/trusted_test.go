package delivery

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"certmail/mailbox"
)

// Issue 11 item 11: only an LMTP client listed in TrustedClients vouches
// for its envelope senders (Item.SenderAuth, which decides whether
// certified notices are mailed); any other client, the null sender, and
// `certmail deliver` (no envelope) vouch for nobody.
func TestLMTPTrustedClients(t *testing.T) {
	st := openStore(t, "alice")
	if err := st.Update(func(tx *mailbox.Tx) error {
		_, err := tx.CreateMailbox("alice", mailbox.NewMailbox{Name: "Held"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c := &certifyAll{}
	addr, d := startLMTP(t, st, Options{Certifier: c}, LMTPOptions{
		TrustedClients: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("127.0.1.0/24")},
	})
	send := func(src, from string) Item {
		t.Helper()
		dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		conn, err := dl.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cl := smtp.NewClientLMTP(conn)
		defer cl.Close()
		if err := cl.Hello("mta.test"); err != nil {
			t.Fatal(err)
		}
		if err := cl.SendMail(from, []string{"alice@example.org"}, strings.NewReader("Subject: s\r\n\r\nx\r\n")); err != nil {
			t.Fatalf("from %s: %v", src, err)
		}
		cl.Quit()
		return c.seen[len(c.seen)-1]
	}
	for _, tc := range []struct{ src, from, want string }{
		{"127.0.0.1", "a@example.net", ""},
		{"127.0.0.2", "a@example.net", "lmtp-client:127.0.0.2"},
		{"127.0.1.9", "a@example.net", "lmtp-client:127.0.1.9"},
		{"127.0.0.3", "a@example.net", ""},
		{"127.0.0.2", "", ""}, // the null sender names nobody
	} {
		if it := send(tc.src, tc.from); it.SenderAuth != tc.want || it.Sender != tc.from {
			t.Errorf("from %s, MAIL FROM <%s>: sender %q auth %q, want auth %q", tc.src, tc.from, it.Sender, it.SenderAuth, tc.want)
		}
	}
	// Without an envelope, nothing vouches.
	c.seen = nil
	if errs := d.DeliverFrom(t.Context(), "a@example.net", []string{"alice"}, "", []byte("Subject: s\r\n\r\nx\r\n")); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if c.seen[0].SenderAuth != "" {
		t.Errorf("DeliverFrom: auth %q", c.seen[0].SenderAuth)
	}
}
