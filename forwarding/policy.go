package forwarding

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"certmail/config"
	"certmail/mailbox"

	"certmail/kv"

	"certmail/kv/keyspace"
)

// Policy forwards what stays unread in a mailbox.
type Policy struct {
	Account string `json:"account"`
	// Mailbox is the watched mailbox; empty means INBOX.
	Mailbox string `json:"mailbox,omitempty"`
	// After is how long a message may stay unread.
	After time.Duration `json:"after"`
	// To are the alternates: local account names or mail addresses.
	To []string `json:"to"`
	// CertifiedOnly limits the policy to certified items.
	CertifiedOnly bool `json:"certified_only,omitempty"`
	// Source is where the policy comes from: "store" (set by command) or
	// "config".
	Source string `json:"source,omitempty"`
}

// MarshalJSON writes After as a duration string ("7d"), as everything
// certmail prints in JSON; the policies stored since are written so too.
func (p Policy) MarshalJSON() ([]byte, error) {
	type plain Policy
	return json.Marshal(struct {
		plain
		After config.Duration `json:"after"`
	}{plain(p), config.Duration(p.After)})
}

// UnmarshalJSON reads After as a string or, as policies stored before
// were written, a number of nanoseconds.
func (p *Policy) UnmarshalJSON(b []byte) error {
	type plain Policy
	var v struct {
		plain
		After config.Duration `json:"after"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Policy(v.plain)
	p.After = time.Duration(v.After)
	return nil
}

func (p *Policy) mailboxName() string {
	if p.Mailbox == "" {
		return "INBOX"
	}
	return p.Mailbox
}

// Validate checks a policy and normalizes its names.
func (p *Policy) Validate() error {
	acct, err := mailbox.NormalizeAccount(p.Account)
	if err != nil {
		return fmt.Errorf("policy account %q: %w", p.Account, err)
	}
	p.Account = acct
	mb, err := mailbox.NormalizeMailbox(p.mailboxName())
	if err != nil {
		return fmt.Errorf("policy mailbox: %w", err)
	}
	p.Mailbox = mb
	if p.After < time.Second {
		return fmt.Errorf("policy for %s: --forward-unread-after must be at least 1s, have %v", acct, p.After)
	}
	if len(p.To) == 0 {
		return fmt.Errorf("policy for %s: no alternates (--to)", acct)
	}
	for i, t := range p.To {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			return fmt.Errorf("policy for %s: empty alternate", acct)
		}
		if !strings.Contains(t, "@") {
			if _, err := mailbox.NormalizeAccount(t); err != nil {
				return fmt.Errorf("policy for %s: alternate %q is neither an account nor an address", acct, t)
			}
		}
		if t == acct {
			return fmt.Errorf("policy for %s: cannot forward to itself", acct)
		}
		p.To[i] = t
	}
	return nil
}

type policyKey struct{ acct, mailbox string }

func storedPolicyKey(acct, mb string) []byte {
	return []byte(keyspace.Forwarding + "policy/" + acct + "/" + mb)
}

func loadPolicies(kv kv.Records) ([]Policy, error) {
	var out []Policy
	err := kv.Scan([]byte(keyspace.Forwarding+"policy/"), func(_, v []byte) error {
		var p Policy
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("decoding a stored policy: %w", err)
		}
		out = append(out, p)
		return nil
	})
	return out, err
}
