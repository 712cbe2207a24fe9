package addressing

import (
	"errors"
	"strings"
	"testing"

	"certmail/mailbox"
)

// configs are the configurations the table is run against: served
// domains with an alternate domain, none served (hostname only), and
// served without alternates.
var configs = map[string]Options{
	"served": {Domains: []string{"example.org", "Example.NET."}, Hostname: "mail.example.org", AlternateDomains: []string{"partner.example"}},
	"none":   {Hostname: "Mail.Example.org", AlternateDomains: []string{"Partner.Example."}},
	"plain":  {Domains: []string{"example.org"}, Hostname: "mail.example.org"},
}

// outcome is what Route or Recipient made of an address: "acct:NAME",
// "ext:ADDR", or the sentinel error's name.
func outcome(a Address, err error) string {
	switch {
	case errors.Is(err, ErrBadAddress):
		return "bad"
	case errors.Is(err, ErrNotLocal):
		return "notlocal"
	case errors.Is(err, ErrNoAccount):
		return "noaccount"
	case err != nil:
		return "error: " + err.Error()
	case a.Local():
		return "acct:" + a.Account
	}
	return "ext:" + a.Addr
}

// TestRouteAndRecipient is the rule as a table: every address against
// every configuration, for routing (alternates, forwards) and for final
// delivery (LMTP recipients).
func TestRouteAndRecipient(t *testing.T) {
	type want struct{ route, rcpt string }
	for _, tc := range []struct {
		addr string
		want map[string]want // by config
	}{
		{"carol", map[string]want{
			"served": {"acct:carol", "acct:carol"}, "none": {"acct:carol", "acct:carol"}, "plain": {"acct:carol", "acct:carol"}}},
		{" Carol ", map[string]want{
			"served": {"acct:carol", "acct:carol"}, "none": {"acct:carol", "acct:carol"}, "plain": {"acct:carol", "acct:carol"}}},
		{"carol@example.org", map[string]want{
			"served": {"acct:carol", "acct:carol"},
			// No domains served: routing knows only the hostname; LMTP
			// takes what the MTA sends.
			"none":  {"ext:carol@example.org", "acct:carol"},
			"plain": {"acct:carol", "acct:carol"}}},
		{"Carol@EXAMPLE.NET.", map[string]want{
			"served": {"acct:carol", "acct:carol"},
			"none":   {"ext:Carol@example.net", "acct:carol"},
			"plain":  {"ext:Carol@example.net", "notlocal"}}},
		// The bug: an external alternate with a local account's name.
		{"carol@partner.example", map[string]want{
			"served": {"ext:carol@partner.example", "notlocal"},
			"none":   {"ext:carol@partner.example", "notlocal"},
			"plain":  {"ext:carol@partner.example", "notlocal"}}},
		{"Carol@Partner.Example.", map[string]want{
			"served": {"ext:Carol@partner.example", "notlocal"},
			"none":   {"ext:Carol@partner.example", "notlocal"},
			"plain":  {"ext:Carol@partner.example", "notlocal"}}},
		{"carol@mail.example.org", map[string]want{
			// With domains configured the hostname is not one of them.
			"served": {"ext:carol@mail.example.org", "notlocal"},
			"none":   {"acct:carol", "acct:carol"},
			"plain":  {"ext:carol@mail.example.org", "notlocal"}}},
		{"x@elsewhere.test", map[string]want{
			"served": {"ext:x@elsewhere.test", "notlocal"},
			"none":   {"ext:x@elsewhere.test", "acct:x"},
			"plain":  {"ext:x@elsewhere.test", "notlocal"}}},
		{"bad name@example.org", map[string]want{
			"served": {"noaccount", "noaccount"},
			"none":   {"ext:bad name@example.org", "noaccount"},
			"plain":  {"noaccount", "noaccount"}}},
		// The last @ splits: "a@b" is no account name.
		{"a@b@example.org", map[string]want{
			"served": {"noaccount", "noaccount"}, "none": {"ext:a@b@example.org", "noaccount"}, "plain": {"noaccount", "noaccount"}}},
		{"bad name", map[string]want{
			"served": {"noaccount", "noaccount"}, "none": {"noaccount", "noaccount"}, "plain": {"noaccount", "noaccount"}}},
		{"bob@", map[string]want{
			"served": {"bad", "bad"}, "none": {"bad", "bad"}, "plain": {"bad", "bad"}}},
		{"bob@.", map[string]want{
			"served": {"bad", "bad"}, "none": {"bad", "bad"}, "plain": {"bad", "bad"}}},
		{"@example.org", map[string]want{
			"served": {"bad", "bad"}, "none": {"bad", "bad"}, "plain": {"bad", "bad"}}},
		{"", map[string]want{
			"served": {"bad", "bad"}, "none": {"bad", "bad"}, "plain": {"bad", "bad"}}},
	} {
		for name, o := range configs {
			r := New(o)
			w, ok := tc.want[name]
			if !ok {
				t.Fatalf("%q: no expectation for config %s", tc.addr, name)
			}
			if got := outcome(r.Route(tc.addr)); got != w.route {
				t.Errorf("%s: Route(%q) = %s, want %s", name, tc.addr, got, w.route)
			}
			if got := outcome(r.Recipient(tc.addr)); got != w.rcpt {
				t.Errorf("%s: Recipient(%q) = %s, want %s", name, tc.addr, got, w.rcpt)
			}
		}
	}
}

type accounts map[string]bool

func (a accounts) AccountExists(acct string) (bool, error) { return a[acct], nil }

// TestResolve: the look-up. A local account named like an external
// alternate's local part does not make that alternate local.
func TestResolve(t *testing.T) {
	r := New(configs["served"])
	have := accounts{"carol": true}
	for addr, want := range map[string]string{
		"carol@partner.example": "ext:carol@partner.example",
		"CAROL@example.org":     "acct:carol",
		"carol":                 "acct:carol",
		"dave@example.org":      "noaccount",
		"dave":                  "noaccount",
		"dave@elsewhere.test":   "ext:dave@elsewhere.test",
	} {
		if got := outcome(r.Resolve(have, addr)); got != want {
			t.Errorf("Resolve(%q) = %s, want %s", addr, got, want)
		}
	}
	if got := outcome(r.ResolveRecipient(have, "dave@example.org")); got != "noaccount" {
		t.Errorf("ResolveRecipient(dave@example.org) = %s", got)
	}
	if got := outcome(r.ResolveRecipient(have, "carol@partner.example")); got != "notlocal" {
		t.Errorf("ResolveRecipient(carol@partner.example) = %s", got)
	}
	if !r.IsAlternateDomain("Partner.Example.") || r.IsAlternateDomain("example.org") {
		t.Error("IsAlternateDomain")
	}
	if r.Primary() != "example.org" || r.AddressOf("carol") != "carol@example.org" {
		t.Errorf("primary %q", r.Primary())
	}
	if p := New(configs["none"]).Primary(); p != "mail.example.org" {
		t.Errorf("primary without domains: %q", p)
	}
}

// TestResolveInStore: the store and its transactions answer the look-up.
func TestResolveInStore(t *testing.T) {
	st, err := mailbox.Open(mailbox.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateAccount("carol", "pw", mailbox.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	r := New(configs["served"])
	if got := outcome(r.Resolve(st, "Carol@example.org")); got != "acct:carol" {
		t.Fatalf("store: %s", got)
	}
	err = st.View(func(tx *mailbox.Tx) error {
		if got := outcome(r.Resolve(tx, "carol@partner.example")); got != "ext:carol@partner.example" {
			t.Errorf("tx: %s", got)
		}
		if got := outcome(r.Resolve(tx, "zed@example.org")); got != "noaccount" {
			t.Errorf("tx: %s", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzRoute: any string. Route never panics, and what it says holds: a
// local address names an account the store could have, written in the
// primary domain; an external one is in no local domain and keeps its
// local part; Recipient agrees with Route wherever domains are served.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{"carol", "carol@partner.example", "Carol@EXAMPLE.NET.", "a@b@c", "@", "x@", "\x00@example.org", "é@example.org", " bob @ example.org "} {
		f.Add(s)
	}
	r := New(configs["served"])
	f.Fuzz(func(t *testing.T, addr string) {
		a, err := r.Route(addr)
		if err != nil {
			if a != (Address{}) {
				t.Fatalf("an address with an error: %+v", a)
			}
			return
		}
		if a.Local() {
			if n, err := mailbox.NormalizeAccount(a.Account); err != nil || n != a.Account {
				t.Fatalf("local account %q is not a normalized name", a.Account)
			}
			if a.Addr != r.AddressOf(a.Account) {
				t.Fatalf("local address %q", a.Addr)
			}
			if a.Domain != "" && !strings.EqualFold(a.Domain, "example.org") && !strings.EqualFold(a.Domain, "example.net") {
				t.Fatalf("%q: local in domain %q", addr, a.Domain)
			}
		} else {
			if a.Domain == "" || a.Domain == "example.org" || a.Domain == "example.net" {
				t.Fatalf("%q: external in domain %q", addr, a.Domain)
			}
			if !strings.HasSuffix(a.Addr, "@"+a.Domain) {
				t.Fatalf("%q: external address %q not in %q", addr, a.Addr, a.Domain)
			}
		}
		b, err := r.Recipient(addr)
		if a.Local() && (err != nil || b != a) || !a.Local() && !errors.Is(err, ErrNotLocal) {
			t.Fatalf("%q: Route %+v, Recipient %+v %v", addr, a, b, err)
		}
	})
}

// TestLogin: a user logs in with the bare name or the address in any
// served domain, in any case; an address elsewhere is no local account.
func TestLogin(t *testing.T) {
	cases := []struct{ cfg, name, want string }{
		{"served", "alice", "acct:alice"},
		{"served", " Alice ", "acct:alice"},
		{"served", "alice@example.org", "acct:alice"},
		{"served", "ALICE@EXAMPLE.org", "acct:alice"},
		{"served", "alice@example.net.", "acct:alice"},
		{"served", "alice@partner.example", "notlocal"},
		{"served", "alice@evil.test", "notlocal"},
		{"served", "alice@mail.example.org", "notlocal"},
		{"served", "alice@", "bad"},
		{"served", "@example.org", "bad"},
		{"served", "a b@example.org", "noaccount"},
		{"none", "alice@mail.example.org", "acct:alice"},
		{"none", "Alice@Example.org", "acct:alice"},
		{"none", "alice@partner.example", "notlocal"},
		{"plain", "alice@Example.Org", "acct:alice"},
	}
	for _, c := range cases {
		acct, err := New(configs[c.cfg]).Login(c.name)
		if got := outcome(Address{Account: acct}, err); got != c.want {
			t.Errorf("%s: Login(%q) = %s, want %s", c.cfg, c.name, got, c.want)
		}
	}
}
