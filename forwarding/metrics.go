package forwarding

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"certmail/mailbox"
	"certmail/notifier"
)

// Collector exposes unread monitoring to Prometheus, computed at scrape
// time from the store (so the numbers are never stale and nothing is kept
// in step by hand).
type Collector struct {
	s          *Service
	perMailbox bool

	unread, oldest, forwards, items, pending, up *prometheus.Desc
}

// MetricsHandler serves the service's metrics in Prometheus's format.
// perMailbox labels unread counts and ages by account and mailbox;
// without it they are summed (counts) and the oldest taken (ages), so
// that nobody watching the numbers learns when one person reads.
func MetricsHandler(s *Service, perMailbox bool) http.Handler {
	registry := prometheus.NewRegistry()
	registry.MustRegister(NewCollector(s, perMailbox))
	return promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
}

// NewCollector returns the service's Prometheus collector (see
// MetricsHandler for perMailbox).
func NewCollector(s *Service, perMailbox bool) *Collector {
	unreadHelp, oldestHelp := "Unread messages in all mailboxes", "Age of the oldest unread message in any mailbox."
	var labels []string
	if perMailbox {
		unreadHelp, oldestHelp = "Unread messages per mailbox", "Age of the oldest unread message per mailbox."
		labels = []string{"account", "mailbox"}
	}
	return &Collector{
		s:          s,
		perMailbox: perMailbox,
		unread:     prometheus.NewDesc("certmail_unread_messages", unreadHelp+" (a certified stub counts until its item is settled).", labels, nil),
		oldest:     prometheus.NewDesc("certmail_unread_oldest_age_seconds", oldestHelp, labels, nil),
		forwards:   prometheus.NewDesc("certmail_forwards_total", "Forwards done by policy, originator alternates or operators.", nil, nil),
		items:      prometheus.NewDesc("certmail_certified_items", "Certified items by state.", []string{"state"}, nil),
		pending:    prometheus.NewDesc("certmail_outbox_pending", "Notices waiting in the outbox.", nil, nil),
		up:         prometheus.NewDesc("certmail_metrics_error", "1 if the last scrape could not read the store.", nil, nil),
	}
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.unread, c.oldest, c.forwards, c.items, c.pending, c.up} {
		ch <- d
	}
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	rep, err := c.s.Unread(0)
	if err != nil {
		c.s.log.Error("metrics: unread report", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
	if c.perMailbox {
		for _, m := range rep.Mailboxes {
			ch <- prometheus.MustNewConstMetric(c.unread, prometheus.GaugeValue, float64(m.Unread), m.Account, m.Mailbox)
			ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, m.OldestAge.Seconds(), m.Account, m.Mailbox)
		}
	} else {
		var unread int
		var oldest float64
		for _, m := range rep.Mailboxes {
			unread += m.Unread
			oldest = max(oldest, m.OldestAge.Seconds())
		}
		ch <- prometheus.MustNewConstMetric(c.unread, prometheus.GaugeValue, float64(unread))
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest)
	}
	ch <- prometheus.MustNewConstMetric(c.forwards, prometheus.CounterValue, float64(rep.Forwards))
	for state, n := range map[string]int{
		"held": rep.Certified.Held, "acknowledged": rep.Certified.Acknowledged,
		"refused": rep.Certified.Refused, "expired": rep.Certified.Expired,
	} {
		ch <- prometheus.MustNewConstMetric(c.items, prometheus.GaugeValue, float64(n), state)
	}
	var pending int
	if err := c.s.store.View(func(tx *mailbox.Tx) error {
		var err error
		pending, err = notifier.Pending(tx)
		return err
	}); err == nil {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(pending))
	}
}
