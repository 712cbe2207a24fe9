package api

import (
	"errors"
	"strings"
	"testing"
	"time"

	"certmail/receipts"
)

func TestTokens(t *testing.T) {
	kv := receipts.NewMemKV()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	acme, err := AddToken(kv, "acme", false, now)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := AddToken(kv, "ops.desk", true, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(acme, tokenPrefix) || len(acme) != 47 || acme == ops {
		t.Fatalf("tokens %q %q", acme, ops)
	}
	if _, err := AddToken(kv, "acme", true, now); !errors.Is(err, ErrTokenExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	for _, bad := range []string{"", "Acme", "-x", "a b", "a/b", "a\nb", strings.Repeat("a", 65), "é"} {
		if _, err := AddToken(kv, bad, false, now); !errors.Is(err, ErrBadTokenName) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	info, err := LookupToken(kv, acme)
	if err != nil || info.Name != "acme" || info.Operator || !info.Created.Equal(now) {
		t.Fatalf("lookup: %+v %v", info, err)
	}
	if info, err := LookupToken(kv, ops); err != nil || !info.Operator {
		t.Fatalf("lookup operator: %+v %v", info, err)
	}
	for _, bad := range []string{"", acme[:46], acme + "x", "xxxx" + acme[4:], strings.Repeat("a", 1<<20)} {
		if _, err := LookupToken(kv, bad); !errors.Is(err, ErrNoToken) {
			t.Errorf("lookup %.20q: %v", bad, err)
		}
	}
	list, err := ListTokens(kv)
	if err != nil || len(list) != 2 || list[0].Name != "acme" || list[1].Name != "ops.desk" {
		t.Fatalf("list: %+v %v", list, err)
	}
	// Only hashes are stored: the token itself appears nowhere.
	kv.Scan(nil, func(k, v []byte) error {
		if strings.Contains(string(k)+string(v), acme[4:]) {
			t.Errorf("token stored in clear at %q", k)
		}
		return nil
	})
	if err := DeleteToken(kv, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := DeleteToken(kv, "acme"); !errors.Is(err, ErrNoToken) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := LookupToken(kv, acme); !errors.Is(err, ErrNoToken) {
		t.Fatalf("deleted token still works: %v", err)
	}
	// The name is free again (rotation), with a new token.
	again, err := AddToken(kv, "acme", false, now)
	if err != nil || again == acme {
		t.Fatalf("re-add: %q %v", again, err)
	}
}
