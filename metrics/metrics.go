// Package metrics holds certmail's Prometheus families: the counters and
// histograms the protocol servers update as they work (Metrics), and the
// gauges read from the store at scrape time (StateCollector). Every
// family's name, help and labels are declared here, once; the servers
// call small methods and never see Prometheus types.
//
// Labels take values from short fixed sets (a protocol, a result, an IMAP
// command name the server knows), never from what a client typed, so a
// client cannot grow the number of series.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Results of one LMTP recipient (LMTPDelivery).
const (
	Delivered = "delivered" // 250: stored and synced
	Rejected  = "rejected"  // 5xx, at RCPT or after DATA
	Deferred  = "deferred"  // 4xx: the MTA retries
)

// Results of one login (Login).
const (
	LoginOK     = "ok"      // the password was right
	LoginFailed = "failed"  // wrong password, unknown account, malformed attempt
	LoginLocked = "locked"  // refused unchecked: too many failures
	LoginLimit  = "refused" // right password, refused by a session limit
)

// Statuses of an IMAP command (IMAPCommand).
const (
	StatusOK  = "ok"
	StatusNo  = "no"
	StatusBad = "bad"
)

// Metrics are the families the servers update. A nil *Metrics records
// nothing, so that code and tests without a registry need no checks.
type Metrics struct {
	lmtpDeliveries *prometheus.CounterVec
	imapSessions   prometheus.Gauge
	imapCommands   *prometheus.CounterVec
	imapLatency    *prometheus.HistogramVec
	logins         *prometheus.CounterVec
}

// New registers the families on reg, with Go's runtime and the process's
// standard collectors (go_*, process_*).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lmtpDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certmail_lmtp_deliveries_total",
			Help: "LMTP recipients by result: delivered (250), rejected (5xx, at RCPT or after DATA), deferred (4xx).",
		}, []string{"result"}),
		imapSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certmail_imap_sessions",
			Help: "Open IMAP connections, logged in or not.",
		}),
		imapCommands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certmail_imap_commands_total",
			Help: "IMAP commands by name (UNKNOWN for names the server does not know) and tagged status.",
		}, []string{"command", "status"}),
		imapLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "certmail_imap_command_duration_seconds",
			Help: "Time from an IMAP command's name being read to its tagged response (for IDLE, the time idled).",
			// 100 µs to about 52 s.
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"command"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certmail_logins_total",
			Help: "Logins by protocol (imap, http, admin) and result: ok, failed, locked (refused unchecked after too many failures), refused (a session limit).",
		}, []string{"proto", "result"}),
	}
	reg.MustRegister(m.lmtpDeliveries, m.imapSessions, m.imapCommands, m.imapLatency, m.logins,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every result present from the start, so that a rate over a
	// fresh server is 0, not absent.
	for _, r := range []string{Delivered, Rejected, Deferred} {
		m.lmtpDeliveries.WithLabelValues(r)
	}
	for _, p := range []string{"imap", "http"} {
		for _, r := range []string{LoginOK, LoginFailed, LoginLocked} {
			m.logins.WithLabelValues(p, r)
		}
	}
	return m
}

// LMTPDelivery counts one LMTP recipient's outcome.
func (m *Metrics) LMTPDelivery(result string) {
	if m != nil {
		m.lmtpDeliveries.WithLabelValues(result).Inc()
	}
}

// IMAPSession adds delta (+1 opened, -1 closed) to the open sessions.
func (m *Metrics) IMAPSession(delta int) {
	if m != nil {
		m.imapSessions.Add(float64(delta))
	}
}

// IMAPCommand records one command: its name as the server dispatched it
// ("UID FETCH"), how long it took and its status.
func (m *Metrics) IMAPCommand(name string, d time.Duration, status string) {
	if m != nil {
		m.imapCommands.WithLabelValues(name, status).Inc()
		m.imapLatency.WithLabelValues(name).Observe(d.Seconds())
	}
}

// Login counts one login attempt's result.
func (m *Metrics) Login(proto, result string) {
	if m != nil {
		m.logins.WithLabelValues(proto, result).Inc()
	}
}

// Handler serves what reg gathers in Prometheus's text format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
