package keyspace

import (
	"strings"
	"testing"
)

// TestClaimsDisjoint: no claimed prefix starts another, so that every key
// has one owner and no package's scan reads another's records.
func TestClaimsDisjoint(t *testing.T) {
	for name, claims := range map[string][]Claim{"Claims": Claims, "AuxClaims": AuxClaims} {
		for i, a := range claims {
			if a.Prefix == "" || a.Owner == "" {
				t.Errorf("%s[%d]: empty prefix or owner: %+v", name, i, a)
			}
			for j, b := range claims {
				if i != j && strings.HasPrefix(b.Prefix, a.Prefix) {
					t.Errorf("%s: %q (%s) overlaps %q (%s)", name, a.Prefix, a.Owner, b.Prefix, b.Owner)
				}
			}
		}
	}
}

func TestOwner(t *testing.T) {
	for key, want := range map[string]string{
		"acct/alice":     "mailbox",
		"acctgone/alice": "mailbox",
		"timerid/x\x00y": "mailbox",
		"x/evlog/head":   "receipts/evidence",
		"x/outbox/due/1": "notifier",
		"x/cm/item/L":    "certified",
		"x/fw/count":     "forwarding",
		"x/api/token/t":  "api",
		"x/authfail/a/b": "authguard",
		"x/unclaimed/1":  "",
		"zz/what":        "",
		"":               "",
		"acct":           "",
	} {
		if got := Owner([]byte(key)); got != want {
			t.Errorf("Owner(%q) = %q; want %q", key, got, want)
		}
	}
	if got := AuxOwner([]byte("evlog/leaf/1")); got != "receipts/evidence" {
		t.Errorf("AuxOwner(evlog/leaf/1) = %q", got)
	}
}

func TestPrefix(t *testing.T) {
	for key, want := range map[string]string{
		"acct/alice":           "acct/",
		"acctgone/alice":       "acctgone/",
		"raw/\x00\x00\x00\x01": "raw/",
		"x/evlog/head":         "x/evlog/",
		"x/cm/item/L":          "x/cm/",
		"x/unclaimed/1":        "",
		"zz/what":              "",
		"":                     "",
	} {
		if got := Prefix([]byte(key)); got != want {
			t.Errorf("Prefix(%q) = %q; want %q", key, got, want)
		}
	}
}
