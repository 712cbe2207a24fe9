package metrics

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"certmail/kv"
	"certmail/notifier"
	"certmail/receipts"
)

// memDB runs transactions straight on one in-memory KV.
type memDB struct{ kv kv.Records }

func (d memDB) Update(fn func(kv.Records) error) error { return fn(d.kv) }
func (d memDB) View(fn func(kv.Records) error) error   { return fn(d.kv) }

func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

func value(t *testing.T, text, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s in\n%s", name, text)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestStateCollector(t *testing.T) {
	db := memDB{receipts.NewMemKV()}
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	c := NewStateCollector(db, dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.Now()
	c.now = func() time.Time { return now }
	reg.MustRegister(c)

	text := scrape(t, reg)
	if value(t, text, "certmail_outbox_pending") != 0 || value(t, text, "certmail_outbox_oldest_age_seconds") != 0 ||
		value(t, text, "certmail_evidence_log_records") != 0 || value(t, text, "certmail_state_scrape_error") != 0 {
		t.Errorf("empty store:\n%s", text)
	}

	o, err := notifier.NewOutbox(db, notifier.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n1", "n2"} {
		n := notifier.Notice{ID: id, To: []string{"a@example.org"}, From: "p@example.org", Subject: "s", Text: "t"}
		if err := o.Enqueue(db.kv, n); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(90 * time.Second)
	text = scrape(t, reg)
	if got := value(t, text, "certmail_outbox_pending"); got != 2 {
		t.Errorf("pending = %v", got)
	}
	if age := value(t, text, "certmail_outbox_oldest_age_seconds"); age < 85 || age > 100 {
		t.Errorf("oldest age = %v, want about 90", age)
	}
	if value(t, text, "certmail_store_bytes") < 0 {
		t.Error("negative store size")
	}
	if !strings.Contains(text, "certmail_outbox_dead_letters 0") {
		t.Errorf("no dead letters line:\n%s", text)
	}
}

// A nil *Metrics records nothing and does not panic: packages use it
// unconditionally.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.LMTPDelivery(Delivered)
	m.IMAPSession(1)
	m.IMAPCommand("NOOP", time.Millisecond, StatusOK)
	m.Login("imap", LoginOK)
}
