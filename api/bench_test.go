package api_test

import (
	"net/http"
	"strings"
	"testing"

	"certmail/receipts/evidence"
)

// BenchmarkSubmit measures certified items posted over HTTP into a real
// store: each is one transaction with two evidence appends (COP and
// notification) and a sync before the answer. appends/s is the log's
// throughput as a sender sees it.
func BenchmarkSubmit(b *testing.B) {
	e := newEnv(b, 0)
	body := mustJSON(b, map[string]any{"message": message, "recipients": []string{"alice"}})
	b.ReportAllocs()
	for b.Loop() {
		if r := e.do("POST", "/v1/items", e.acme, body); r.status != http.StatusCreated {
			b.Fatalf("submit: %d %s", r.status, r.body)
		}
	}
	b.ReportMetric(2*float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkBundle measures fetching an item's evidence bundle over HTTP
// (from a log of a few hundred records) and verifying it offline, as a
// sender following an item does.
func BenchmarkBundle(b *testing.B) {
	e := newEnv(b, 0)
	body := mustJSON(b, map[string]any{"message": message, "recipients": []string{"alice", "bob"}})
	var label string
	for range 100 {
		r := e.do("POST", "/v1/items", e.acme, body)
		if r.status != http.StatusCreated {
			b.Fatalf("submit: %d", r.status)
		}
		label = r.body2label(b)
	}
	b.ReportAllocs()
	for b.Loop() {
		bundle := e.bundle(e.acme, label)
		if _, err := evidence.Verify(bundle, evidence.VerifyOptions{GatewayKey: e.gatewayPub(), Message: strings.NewReader(message)}); err != nil {
			b.Fatal(err)
		}
	}
}
