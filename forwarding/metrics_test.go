package forwarding

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"certmail/mailbox"
)

// TestQuotaMetrics: /metrics shows the accounts at a quota limit, and
// usage and limits per account only when per-mailbox metrics are on.
func TestQuotaMetrics(t *testing.T) {
	st := openStore(t)
	for _, a := range []string{"alice", "bob"} {
		if err := st.CreateAccount(a, "pw", mailbox.DefaultMailboxes()); err != nil {
			t.Fatal(err)
		}
	}
	one := int64(1)
	if err := st.SetQuota("alice", nil, &one); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(func(tx *mailbox.Tx) error {
		_, err := tx.Append("alice", "INBOX", []byte("Subject: x\r\n\r\nbody\r\n"), mailbox.AppendOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	svc, err := New(st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	scrape := func(perMailbox bool) string {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(NewCollector(svc, perMailbox))
		rec := httptest.NewRecorder()
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	out := scrape(false)
	for _, want := range []string{`certmail_quota_accounts_full{resource="messages"} 1`, `certmail_quota_accounts_full{resource="storage"} 0`, "certmail_quota_storage_used_bytes 20"} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `account="alice"`) {
		t.Errorf("per-account quota figures without per-mailbox metrics:\n%s", out)
	}
	out = scrape(true)
	for _, want := range []string{`certmail_quota_messages_used{account="alice"} 1`, `certmail_quota_messages_limit{account="alice"} 1`,
		`certmail_quota_storage_used_bytes{account="alice"} 20`, `certmail_quota_messages_limit{account="bob"} 0`} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics (per mailbox) lacks %q:\n%s", want, out)
		}
	}
}
