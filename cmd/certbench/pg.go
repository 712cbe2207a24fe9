package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"certmail/kv/pgkv/pgtest"
)

// certmail on PostgreSQL (--store postgres, issue 13): a private cluster
// started the way the tests start theirs (pgtest: Debian's binaries,
// initdb in a temporary directory, a loopback port, fsync and
// synchronous_commit on), one database, and --nodes certmail processes
// serving it; the cluster is stopped and removed with the servers.

// pgStatsSettle is how long a backend's statistics may lag: an idle
// backend flushes its pending counters (pg_stat_database's xact_commit)
// PGSTAT_IDLE_INTERVAL, 10 s, after it went idle (PostgreSQL 15+,
// src/backend/utils/activity/pgstat.c). The transaction count of a
// workload run is read that long after it, and before it.
const pgStatsSettle = 11 * time.Second

type pgStore struct {
	cluster *pgtest.Cluster
	db      string
	// idleRate is the nodes' transactions per second while no client
	// works (their background: the change feed, leases), measured once
	// after they started; a run's count leaves out what its settling
	// time adds at that rate.
	idleRate float64
}

// startPostgres starts the private cluster and creates the database
// certmail's nodes share. Without Debian's PostgreSQL server binaries it
// fails, naming the package to install.
func startPostgres() (*pgStore, error) {
	c, err := pgtest.StartCluster()
	if err != nil {
		return nil, fmt.Errorf("--store postgres: %w", err)
	}
	db, err := c.CreateDB("certbench")
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("--store postgres: %w", err)
	}
	return &pgStore{cluster: c, db: db}, nil
}

// dsn is the store URL for certmail: no password in it, the cluster's
// passfile named instead.
func (p *pgStore) dsn() string { return p.cluster.DSN(p.db) }

func (p *pgStore) pid() int { return p.cluster.Pid() }

func (p *pgStore) stop() error { return p.cluster.Stop() }

// xacts is the database's transaction count (commits and rollbacks,
// pg_stat_database) as the statistics show it now. Every transaction is
// at least one round trip between a node and the server. It is read
// from another database, so that the reading does not count.
func (p *pgStore) xacts() (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.cluster.DSN("postgres"))
	if err != nil {
		return 0, fmt.Errorf("postgres statistics: %w", err)
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", p.db).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres statistics: %w", err)
	}
	return n, nil
}

// settledXacts waits for the backends' statistics to reach the server
// and then reads the transaction count.
func (p *pgStore) settledXacts() (int64, error) {
	time.Sleep(pgStatsSettle)
	return p.xacts()
}

// startCertmailPG starts a private PostgreSQL cluster, creates the users
// in its database through the first node's data directory, and starts
// nodes `certmail serve --store URL --node nN` processes on it, each with
// a data directory of its own holding the first one's gateway key (as
// docs/scale-out.md has an operator do).
// pprofAddr, if set, is the first node's profiling address.
func startCertmailPG(bin, dir string, nodes int, users []string, password, pprofAddr string) (*server, error) {
	pg, err := startPostgres()
	if err != nil {
		return nil, err
	}
	s, err := startNodes(bin, dir, pg, nodes, users, password, pprofAddr)
	if err != nil {
		pg.stop()
		return nil, err
	}
	return s, nil
}

func startNodes(bin, dir string, pg *pgStore, nodes int, users []string, password, pprofAddr string) (*server, error) {
	first := filepath.Join(dir, "n1", "data")
	if err := addUsers(bin, first, []string{"--store", pg.dsn()}, users, password); err != nil {
		return nil, err
	}
	key, err := os.ReadFile(filepath.Join(first, "gateway.key"))
	if err != nil {
		return nil, fmt.Errorf("the first node's gateway key: %w", err)
	}
	var started []*server
	for i := 1; i <= nodes; i++ {
		ndir := filepath.Join(dir, fmt.Sprintf("n%d", i))
		data := filepath.Join(ndir, "data")
		if i > 1 {
			if err := os.MkdirAll(data, 0o700); err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(data, "gateway.key"), key, 0o600); err != nil {
				return nil, err
			}
		}
		profile := ""
		if i == 1 {
			profile = pprofAddr
		}
		n, err := serveCertmail(bin, pgServerName(nodes), ndir,
			[]string{"--data", data, "--store", pg.dsn(), "--node", fmt.Sprintf("n%d", i)}, profile)
		if err != nil {
			for _, s := range started {
				s.stop()
			}
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		started = append(started, n)
	}
	s := started[0]
	s.more, s.pg = started[1:], pg
	x0, err := pg.settledXacts()
	if err == nil {
		t0 := time.Now()
		var x1 int64
		x1, err = pg.settledXacts()
		pg.idleRate = float64(x1-x0) / time.Since(t0).Seconds()
	}
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// pgServerName is the column of certmail on PostgreSQL in the tables.
func pgServerName(nodes int) string {
	if nodes == 1 {
		return "certmail-pg"
	}
	return fmt.Sprintf("certmail-pg×%d", nodes)
}

// pgUsage is what one workload run cost PostgreSQL.
type pgUsage struct {
	Xacts   int64   // transactions in the database
	DBCPU   float64 // seconds, the postmaster and its backends
	NodeCPU float64 // seconds, the certmail nodes
}

// pgMeter follows the database over one workload run.
type pgMeter struct {
	pg *pgStore
	x0 int64
	m  *meter
}

func startPGMeter(pg *pgStore) (*pgMeter, error) {
	x0, err := pg.settledXacts()
	if err != nil {
		return nil, err
	}
	return &pgMeter{pg: pg, x0: x0, m: startMeter([]int{pg.pid()})}, nil
}

func (m *pgMeter) finish() (pgUsage, error) {
	u := m.m.finish()
	end := time.Now()
	x1, err := m.pg.settledXacts()
	if err != nil {
		return pgUsage{}, err
	}
	if x1 < m.x0 {
		return pgUsage{}, errors.New("postgres statistics went backwards (reset?)")
	}
	// The run's transactions: the count less the background of the
	// settling time after it.
	idle := int64(m.pg.idleRate * time.Since(end).Seconds())
	return pgUsage{Xacts: max(x1-m.x0-idle, 0), DBCPU: u.CPU}, nil
}
