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
	// Quotas (mailbox/quota.go): accounts at or past a limit, and, per
	// account only when perMailbox, usage and limits.
	quotaFull, storageUsed, storageLimit, messagesUsed, messagesLimit *prometheus.Desc
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
	// Quota usage per account only with perMailbox, as unread counts.
	usedHelp, acctLabel := "What the accounts' messages and held certified items take, summed.", []string(nil)
	if perMailbox {
		usedHelp, acctLabel = "What an account's messages and held certified items take.", []string{"account"}
	}
	return &Collector{
		s:             s,
		perMailbox:    perMailbox,
		unread:        prometheus.NewDesc("certmail_unread_messages", unreadHelp+" (a certified stub counts until its item is settled).", labels, nil),
		oldest:        prometheus.NewDesc("certmail_unread_oldest_age_seconds", oldestHelp, labels, nil),
		forwards:      prometheus.NewDesc("certmail_forwards_total", "Forwards done by policy, originator alternates or operators.", nil, nil),
		items:         prometheus.NewDesc("certmail_certified_items", "Certified items by state.", []string{"state"}, nil),
		up:            prometheus.NewDesc("certmail_metrics_error", "1 if the last scrape could not read the store.", nil, nil),
		quotaFull:     prometheus.NewDesc("certmail_quota_accounts_full", "Accounts at or past a quota limit (they get NO [OVERQUOTA] and 552 5.2.2), by resource.", []string{"resource"}, nil),
		storageUsed:   prometheus.NewDesc("certmail_quota_storage_used_bytes", usedHelp, acctLabel, nil),
		storageLimit:  prometheus.NewDesc("certmail_quota_storage_limit_bytes", "An account's storage limit (0: none).", []string{"account"}, nil),
		messagesUsed:  prometheus.NewDesc("certmail_quota_messages_used", "An account's messages.", []string{"account"}, nil),
		messagesLimit: prometheus.NewDesc("certmail_quota_messages_limit", "An account's message limit (0: none).", []string{"account"}, nil),
	}
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.unread, c.oldest, c.forwards, c.items, c.up,
		c.quotaFull, c.storageUsed, c.storageLimit, c.messagesUsed, c.messagesLimit} {
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
	c.collectQuotas(ch)
}

// collectQuotas reads every account's quota: one key each, the counter
// kept with the messages.
func (c *Collector) collectQuotas(ch chan<- prometheus.Metric) {
	accts, err := c.s.store.ListAccounts()
	if err != nil {
		c.s.log.Error("metrics: listing accounts", "err", err)
		return
	}
	var fullStorage, fullMessages, used int64
	for _, a := range accts {
		q, err := c.s.store.Quota(a)
		if err != nil {
			continue // deleted meanwhile
		}
		if q.StorageLimit > 0 && q.StorageUsed >= q.StorageLimit {
			fullStorage++
		}
		if q.MessagesLimit > 0 && q.MessagesUsed >= q.MessagesLimit {
			fullMessages++
		}
		used += q.StorageUsed
		if c.perMailbox {
			ch <- prometheus.MustNewConstMetric(c.storageUsed, prometheus.GaugeValue, float64(q.StorageUsed), a)
			ch <- prometheus.MustNewConstMetric(c.storageLimit, prometheus.GaugeValue, float64(q.StorageLimit), a)
			ch <- prometheus.MustNewConstMetric(c.messagesUsed, prometheus.GaugeValue, float64(q.MessagesUsed), a)
			ch <- prometheus.MustNewConstMetric(c.messagesLimit, prometheus.GaugeValue, float64(q.MessagesLimit), a)
		}
	}
	if !c.perMailbox {
		ch <- prometheus.MustNewConstMetric(c.storageUsed, prometheus.GaugeValue, float64(used))
	}
	ch <- prometheus.MustNewConstMetric(c.quotaFull, prometheus.GaugeValue, float64(fullStorage), "storage")
	ch <- prometheus.MustNewConstMetric(c.quotaFull, prometheus.GaugeValue, float64(fullMessages), "messages")
}
