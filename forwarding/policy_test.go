package forwarding

import (
	"strings"
	"testing"
	"time"

	"certmail/addressing"
)

func TestPolicyValidate(t *testing.T) {
	p := Policy{Account: "Desk", After: 4 * time.Hour, To: []string{" Alice ", "Duty@Partner.example"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Account != "desk" || p.Mailbox != "INBOX" || p.To[0] != "alice" || p.To[1] != "duty@partner.example" {
		t.Fatalf("normalized: %+v", p)
	}
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{Account: "desk", After: time.Hour}, "no alternates"},
		{Policy{Account: "desk", After: time.Millisecond, To: []string{"a"}}, "at least 1s"},
		{Policy{Account: "desk", After: time.Hour, To: []string{"desk"}}, "itself"},
		{Policy{Account: "desk", After: time.Hour, To: []string{"not an account!"}}, "neither an account"},
		{Policy{Account: "bad name", After: time.Hour, To: []string{"a"}}, "policy account"},
		{Policy{Account: "desk", Mailbox: "a//b", After: time.Hour, To: []string{"a"}}, "mailbox"},
	} {
		if err := tc.p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.p, err, tc.want)
		}
	}
}

func TestTimerIDRoundTrip(t *testing.T) {
	acct, mb, uid, err := parseTimerID(timerID("desk", 7, 42))
	if err != nil || acct != "desk" || mb != 7 || uid != 42 {
		t.Fatalf("%q %d %d %v", acct, mb, uid, err)
	}
	for _, bad := range []string{"", "a/b", "a/1/x", "a/1/2/3"} {
		if _, _, _, err := parseTimerID(bad); err == nil {
			t.Errorf("parseTimerID(%q) accepted", bad)
		}
	}
}

func TestResentHeadersAndHops(t *testing.T) {
	s := &Service{opts: Options{Addresses: addressing.New(addressing.Options{Domains: []string{"example.org"}}), Now: time.Now}}
	raw := []byte("Message-ID: <x@y>\r\nSubject: s\r\n\r\nbody\r\n")
	out, id, _ := s.resent(raw, "desk@example.org", []string{"alice@example.org"})
	if countResent(out) != 1 || messageID(out) != "<x@y>" || !strings.Contains(string(out), "Resent-Message-ID: "+id) {
		t.Fatalf("resent copy:\n%s", out)
	}
	out2, _, _ := s.resent(out, "alice@example.org", []string{"bob@example.org"})
	if countResent(out2) != 2 {
		t.Fatalf("two forwards counted %d", countResent(out2))
	}
}
