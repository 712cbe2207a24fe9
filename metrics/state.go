package metrics

import (
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"certmail/kv"
	"certmail/notifier"
	"certmail/receipts/evidence"
)

// StateCollector reads the store's size, the outbox and the evidence log
// at scrape time, so the numbers are never stale and nothing is kept in
// step by hand.
type StateCollector struct {
	db                                           kv.RecordStore
	dir                                          string
	log                                          *slog.Logger
	now                                          func() time.Time
	size, pending, oldest, dead, records, failed *prometheus.Desc
}

// NewStateCollector reads db (mailbox.Store.Records) and the data
// directory dir.
func NewStateCollector(db kv.RecordStore, dir string, log *slog.Logger) *StateCollector {
	if log == nil {
		log = slog.Default()
	}
	return &StateCollector{
		db: db, dir: dir, log: log, now: time.Now,
		size:    prometheus.NewDesc("certmail_store_bytes", "Disk space the data directory's files take (allocated blocks).", nil, nil),
		pending: prometheus.NewDesc("certmail_outbox_pending", "Notices waiting in the outbox (those waiting for a relay included).", nil, nil),
		oldest:  prometheus.NewDesc("certmail_outbox_oldest_age_seconds", "Age of the oldest notice waiting in the outbox; 0 when it is empty.", nil, nil),
		dead:    prometheus.NewDesc("certmail_outbox_dead_letters", "Notices the outbox gave up on.", nil, nil),
		records: prometheus.NewDesc("certmail_evidence_log_records", "Records in the evidence log (its Merkle tree's size).", nil, nil),
		failed:  prometheus.NewDesc("certmail_state_scrape_error", "1 if the last scrape could not read the store or the data directory.", nil, nil),
	}
}

func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.size, c.pending, c.oldest, c.dead, c.records, c.failed} {
		ch <- d
	}
}

func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	failed := 0.0
	if n, err := DirBytes(c.dir); err != nil {
		c.log.Error("metrics: data directory size", "err", err)
		failed = 1
	} else {
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(n))
	}
	var st notifier.OutboxStats
	var records uint64
	err := c.db.View(func(rec kv.Records) error {
		var err error
		if st, err = notifier.Stats(rec); err != nil {
			return err
		}
		records, err = evidence.Size(rec)
		return err
	})
	if err != nil {
		c.log.Error("metrics: reading the outbox and the evidence log", "err", err)
		failed = 1
	} else {
		age := 0.0
		if !st.Oldest.IsZero() {
			age = max(0, c.now().Sub(st.Oldest).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(st.Dead))
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(records))
	}
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, failed)
}

// DirBytes sums the disk space the regular files under dir take: what the
// store takes on disk, whichever engine wrote it. Allocated blocks, not
// apparent sizes: Badger's value log is a sparse file sized far beyond
// what it holds while it is open.
func DirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			// Removed since the listing (a compaction): not there.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		n += allocated(info)
		return nil
	})
	return n, err
}
