package forwarding

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes unread monitoring to Prometheus, computed at scrape
// time from the store (so the numbers are never stale and nothing is kept
// in step by hand).
type Collector struct {
	s          *Service
	perMailbox bool

	unread, oldest, forwards, items, up *prometheus.Desc
}

// NewCollector returns the service's Prometheus collector. perMailbox
// labels unread counts and ages by account and mailbox; without it they
// are summed (counts) and the oldest taken (ages), so that nobody
// watching the numbers learns when one person reads. The outbox's
// families are the metrics package's.
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
		up:         prometheus.NewDesc("certmail_metrics_error", "1 if the last scrape could not read the store.", nil, nil),
	}
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.unread, c.oldest, c.forwards, c.items, c.up} {
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
}
