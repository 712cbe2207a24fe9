package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestCertifiedHeaderVariantsOverLMTP sends each form of the
// Certified-Delivery field of issue 11 to the real server over LMTP. Each
// one that some mail reader shows as the field but that Go's parser used
// to reject (so that the message was stored as ordinary mail with 250: the
// recipient read M with no COD, the sender got no certificate of posting)
// must now be refused with 550 5.6.0 and a reason; the readable forms are
// certified; the rest is ordinary mail.
func TestCertifiedHeaderVariantsOverLMTP(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	srv := startServer(t, dir)

	const field = "Certified-Delivery: deadline=72h"
	const certifiedOK, plain = "certified", "plain"
	cases := []struct{ name, head, want string }{
		{"plain field", "From: a@example.net\r\n" + field + "\r\nSubject: s\r\n", certifiedOK},
		{"lower case", "certified-delivery: deadline=72h\r\n", certifiedOK},
		{"upper case", "CERTIFIED-DELIVERY: deadline=72h\r\n", certifiedOK},
		{"LF line ends", "From: a@example.net\n" + field + "\n", certifiedOK},
		{"folded value", "Certified-Delivery: deadline=72h;\r\n reveal=none\r\n", certifiedOK},

		{"later line without colon", field + "\r\nthis line has no colon\r\nSubject: s\r\n", "no colon"},
		{"space before colon", "Subject: s\r\nCertified-Delivery : deadline=72h\r\n", "whitespace between the field name"},
		{"tab before colon", "Certified-Delivery\t: deadline=72h\r\n", "whitespace between the field name"},
		{"name folded", "Subject: s\r\nCertified-\r\n Delivery: deadline=72h\r\n", "no colon"},
		{"colon folded", "Subject: s\r\nCertified-Delivery\r\n : deadline=72h\r\n", "no colon"},
		{"continuation line", "Subject: s\r\n " + field + "\r\n", "looks like a Certified-Delivery field"},
		{"indented first line", " " + field + "\r\nSubject: s\r\n", "first line begins with whitespace"},
		{"bare CR", "Subject: s\r" + field + "\r\n", "bare CR"},
		{"CR CR", "Subject: s\r\n" + field + "\r\r\nX-A: b\r\n", "bare CR"},
		{"bare LF in a CRLF block", "Subject: s\r\n\n" + field + "\r\n", "after the end of the header block"},
		{"after a NUL", "Subject: s\x00" + field + "\r\n", "NUL"},
		{"8-bit byte in the name", "Certified-Delivery\xc2\xa0: deadline=72h\r\n", "no field name may hold"},
		{"over-long line", "X-Pad: " + strings.Repeat("a", 1000) + field + "\r\n", "looks like a Certified-Delivery field"},
		{"duplicate", field + "\r\n" + field + "\r\n", "given twice"},
		{"duplicate in another case", field + "\r\ncertified-delivery: deadline=1h\r\n", "given twice"},
		{"underscore", "Certified_Delivery: deadline=72h\r\n", "looks like a Certified-Delivery field"},
		{"dotless i (upper-cases to I)", "Cert\u0131fied-Delivery: deadline=72h\r\n", "no field name may hold"},
		{"mbox From_ line", "From a@example.net Sat Dec  5 10:00:00 2026\r\n" + field + "\r\n", "no field name may hold"},
		{"blank line first", "\r\n" + field + "\r\n", "after the end of the header block"},
		{"whitespace-only line", "Subject: s\r\n \r\n" + field + "\r\n", "only whitespace"},
		{"bad value", "Certified-Delivery: deadline=soon\r\n", "deadline"},

		{"encoded word as the name", "=?utf-8?q?Certified-Delivery?=: deadline=72h\r\n", plain},
		{"another field", "X-Certified-Delivery: deadline=72h\r\n", plain},
		{"in the subject", "Subject: about " + field + "\r\n", plain},
	}
	var plainMsgs []string
	nCertified := 0
	for i, c := range cases {
		marker := fmt.Sprintf("body of case %d", i)
		sep := "\r\n"
		if !strings.Contains(c.head, "\r\n") {
			sep = "\n"
		}
		raw := c.head + sep + marker + sep
		code, text := lmtpRaw(t, srv.lmtp, "alice@example.org", raw)
		switch c.want {
		case certifiedOK:
			nCertified++
			if code != 250 {
				t.Errorf("%s: %d %s, want 250 (certified)", c.name, code, text)
			}
		case plain:
			plainMsgs = append(plainMsgs, raw)
			if code != 250 {
				t.Errorf("%s: %d %s, want 250", c.name, code, text)
			}
		default:
			if code != 550 || !strings.HasPrefix(text, "5.6.0 ") || !strings.Contains(text, c.want) {
				t.Errorf("%s: %d %s, want 550 5.6.0 naming %q", c.name, code, text, c.want)
			}
			if strings.ContainsFunc(text, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
				t.Errorf("%s: the reply is not printable ASCII (RFC 5321 section 4.2): %q", c.name, text)
			}
		}
	}
	srv.stop(t)

	// What the recipient has: a stub for each certified case (M held,
	// its body nowhere in the INBOX), each ordinary message as sent, and
	// nothing of the refused ones.
	st := openStore(t, dir)
	stubs := 0
	seen := make(map[string]bool)
	for _, m := range inbox(t, st, "alice") {
		s := string(asSent(m))
		seen[s] = true
		if strings.Contains(s, "\r\nCertified-Label: ") {
			stubs++
		}
		for i, c := range cases {
			if c.want == plain {
				continue
			}
			for _, end := range []string{"\r", "\n"} {
				if strings.Contains(s, fmt.Sprintf("body of case %d%s", i, end)) {
					t.Errorf("case %q: its M is in the INBOX:\n%q", c.name, s)
				}
			}
		}
	}
	if stubs != nCertified {
		t.Errorf("%d stubs in the INBOX, want %d", stubs, nCertified)
	}
	for _, m := range plainMsgs {
		if !seen[m] {
			t.Errorf("ordinary message not stored as sent: %q", m)
		}
	}
}
