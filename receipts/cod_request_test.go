package receipts

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestCODRequestToCOD(t *testing.T) {
	it := newTestItem(t)
	deadline := time.Date(2026, 4, 1, 9, 0, 0, 500, time.FixedZone("X", -3600))
	req := NewCODRequest(it.gateway, it.label, it.hash, it.recipient, deadline)
	if req.Deadline != "2026-04-01T10:00:00Z" {
		t.Errorf("deadline = %q", req.Deadline)
	}
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCODRequest(data)
	if err != nil {
		t.Fatal(err)
	}
	if back != req {
		t.Errorf("round trip: %+v, want %+v", back, req)
	}
	claims := back.Claims(DecisionCOD, CustodyGatewayHeld, testNow)
	cod, err := SignCOD(it.priv, claims)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyCOD(cod, it.pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Check(it.gateway, it.label, it.hash); err != nil {
		t.Error(err)
	}
	if got.Custody != CustodyGatewayHeld || got.Recipient != it.recipient {
		t.Errorf("claims = %+v", got)
	}
}

func TestParseCODRequestErrors(t *testing.T) {
	it := newTestItem(t)
	good, _ := json.Marshal(NewCODRequest(it.gateway, it.label, it.hash, it.recipient, time.Time{}))
	edit := func(k string, v any) string {
		var m map[string]any
		json.Unmarshal(good, &m)
		m[k] = v
		out, _ := json.Marshal(m)
		return string(out)
	}
	cases := []struct{ name, in, want string }{
		{"empty", "", "EOF"},
		{"trailing", string(good) + "x", "data after the JSON object"},
		{"unknown", edit("x", 1), `unknown field "x"`},
		{"version", edit("v", 9), "v is 9, want 1"},
		{"label", edit("label", "nope"), "is not a certmail label"},
		{"hash", edit("hash", "sha256:zz"), "want 64 hex digits"},
		{"deadline", edit("deadline", "tomorrow"), `deadline "tomorrow" is not RFC 3339`},
		{"gateway", edit("gateway", ""), "gateway is empty"},
		{"huge", strings.Repeat(" ", maxCODRequestSize+1), "too large"},
	}
	for _, c := range cases {
		_, err := ParseCODRequest([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error = %v, want %q", c.name, err, c.want)
		}
	}
}
