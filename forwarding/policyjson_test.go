package forwarding

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestPolicyJSON: a policy is written with a duration string ("after":
// "7d"), and one stored before, with nanoseconds, still reads.
func TestPolicyJSON(t *testing.T) {
	p := Policy{Account: "desk", After: 7 * 24 * time.Hour, To: []string{"alice"}}
	b, err := json.Marshal(p)
	if err != nil || !strings.Contains(string(b), `"after":"7d"`) {
		t.Fatalf("%s, %v", b, err)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil || back.After != p.After || back.Account != "desk" || back.To[0] != "alice" {
		t.Fatalf("%+v, %v", back, err)
	}
	var old Policy
	if err := json.Unmarshal([]byte(`{"account":"desk","after":14400000000000,"to":["alice"],"source":"store"}`), &old); err != nil || old.After != 4*time.Hour || old.Source != "store" {
		t.Fatalf("stored policy: %+v, %v", old, err)
	}
	m := MailboxUnread{Account: "a", Mailbox: "INBOX", OldestAge: 26 * time.Hour}
	b, err = json.Marshal(m)
	if err != nil || !strings.Contains(string(b), `"oldest_age":"1d2h"`) || strings.Contains(string(b), "_ns") {
		t.Fatalf("%s, %v", b, err)
	}
	var mb MailboxUnread
	if err := json.Unmarshal(b, &mb); err != nil || mb != m {
		t.Fatalf("%+v, %v", mb, err)
	}
}
