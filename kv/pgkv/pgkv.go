// Package pgkv is the kv engine on PostgreSQL: every pair is a row of one
// table, key bytea primary key and value bytea, so that several certmail
// nodes can share one database.
//
// Writable transactions run SERIALIZABLE, and a serialization failure
// (SQLSTATE 40001) or deadlock (40P01) is kv.ErrConflict, which kv.Update
// retries. Read-only transactions run REPEATABLE READ READ ONLY: one
// snapshot, never aborted. Round trips are what a transaction costs, so
// the engine keeps them few: BEGIN travels with the first read, writes
// are kept in the transaction and sent with COMMIT in one pipelined batch
// (a transaction that only writes is one round trip), and range scans
// fetch pages whose size grows with the scan, by keyset (key > last
// key), never the whole range at once; a long scan's later statements
// are read a page at a time while PostgreSQL produces the next rows.
//
// Durability: a commit is acknowledged once PostgreSQL has flushed it;
// every session sets synchronous_commit on, whatever the server's default.
//
// The SQL is what CockroachDB and YugabyteDB take too (bytea, INSERT ... ON
// CONFLICT, unnest, = ANY, keyset LIMIT), except for LISTEN/NOTIFY, which
// they lack: the engine's wake-ups (kv.Notifier, notify.go) are off there
// (Options.NoNotify, or found missing when LISTEN is refused), and the
// nodes follow each other by polling alone.
package pgkv

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"certmail/kv"
)

// Table is the one table the engine keeps its pairs in.
const Table = "certmail_kv"

// Options tune an Engine; the zero value is the default.
type Options struct {
	// Timeout bounds each statement (one round trip), and acquiring a
	// connection: a database that does not answer is an error, not a
	// hang. Zero: 30 seconds.
	Timeout time.Duration
	// MaxConns is the size of the connection pool; a pool_max_conns in
	// the DSN wins. Zero: 16. Each open transaction holds a connection
	// from its first statement to its end.
	MaxConns int32
	// NoNotify turns the engine's wake-ups off (kv.Notifier): Subscribe
	// returns kv.ErrNoNotify and Notify does nothing. For databases
	// without LISTEN/NOTIFY (CockroachDB, YugabyteDB), where a commit
	// carrying pg_notify would fail; PostgreSQL refusing LISTEN turns
	// them off too.
	NoNotify bool
	// Password, when set, is the password, read by the caller from a
	// file of its own (certmail's [store] password_file); the DSN may
	// still not hold one.
	Password string
	// DeadPeerAfter is about how long PostgreSQL takes to notice that
	// this node's machine is gone without closing its connections
	// (power lost, a network cut: no FIN, no RST) and to end its
	// sessions, releasing what they held: the row locks of a COMMIT cut
	// off half sent, which would hold up every other node's writes to
	// those rows (the evidence log's head is one row all nodes write),
	// and their snapshots. Each session gets TCP keepalives
	// (tcp_keepalives_idle, _interval, _count): after DeadPeerAfter/2 of
	// silence, 3 probes DeadPeerAfter/6 apart. Without them Linux waits
	// about two hours. Zero: 20 seconds, less than the Timeout other
	// nodes' statements wait for those locks; negative: the server's
	// settings.
	DeadPeerAfter time.Duration
	// IdleInTransaction ends a session whose transaction has waited
	// longer than this for the node's next statement
	// (idle_in_transaction_session_timeout): a hung node, whose machine
	// still answers keepalives, keeps no snapshot open for ever (one
	// held for hours keeps VACUUM from cleaning up). It must be longer
	// than any pause a working node makes inside a transaction: a
	// backup written to a slow pipe waits there between reads. Zero: 10
	// minutes; negative: the server's setting.
	IdleInTransaction time.Duration
	// SoleTTL is how long a sole-writer lease (sole.go) lasts unrenewed;
	// a vanished holder holds other writers up at most that long. Zero:
	// 2 seconds.
	SoleTTL time.Duration
	// SoleQuiet is how long an engine must have seen no other writer
	// before it takes the lease. Zero: 5 seconds.
	SoleQuiet time.Duration
}

// Engine is a kv.Engine on one PostgreSQL database.
type Engine struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	stats   counters
	// ctx is what every statement's context derives from; Abort
	// cancels it.
	ctx   context.Context
	abort context.CancelFunc

	// settings are set on every session as it connects (sessionSettings).
	settings []sessionSetting
	// connCfg opens the connections that LISTEN (notify.go); channel is
	// the channel they listen on and commits notify.
	connCfg  *pgx.ConnConfig
	channel  string
	noNotify atomic.Bool
	probe    sync.Once // notifyWorks

	// parked are connections whose read-only transaction has ended but
	// not yet been committed: the next transaction to take one sends
	// that COMMIT in the round trip of its own first statement, which
	// makes a read-only transaction of one read one round trip, not two.
	// A connection parked for longer than parkFor is committed and goes
	// back to the pool (parkedConn.timer), so no snapshot stays open.
	parkMu sync.Mutex
	parked []*parkedConn
	closed bool

	// sole is the engine's side of the sole-writer lease (sole.go);
	// soleStop ends StartSole's loop, soleWG waits for it.
	sole     *sole
	soleStop context.CancelFunc
	soleWG   sync.WaitGroup
}

// parkFor is how long a read-only transaction's COMMIT may wait for the
// connection's next transaction.
const parkFor = 100 * time.Millisecond

type parkedConn struct {
	c     *pgxpool.Conn
	timer *time.Timer
}

type counters struct {
	roundTrips   atomic.Uint64
	transactions atomic.Uint64
	sent         atomic.Uint64
	received     atomic.Uint64
}

// Stats are the engine's traffic since Open, for benchmarks and metrics.
type Stats struct {
	// RoundTrips counts the times the engine sent something to the
	// server and then waited for its answer: statements, pipelined
	// batches, connection setup, authentication and the pool's pings.
	RoundTrips uint64
	// Transactions counts the transactions begun on the server (a
	// transaction that never sent a statement is not one): what
	// PostgreSQL's xact_commit + xact_rollback count of this engine.
	Transactions uint64
	// BytesSent and BytesReceived are the bytes on the wire.
	BytesSent, BytesReceived uint64
}

// Stats returns the engine's traffic counters.
func (e *Engine) Stats() Stats {
	return Stats{
		RoundTrips:    e.stats.roundTrips.Load(),
		Transactions:  e.stats.transactions.Load(),
		BytesSent:     e.stats.sent.Load(),
		BytesReceived: e.stats.received.Load(),
	}
}

var _ kv.Engine = (*Engine)(nil)

// ErrPasswordInDSN: the DSN carries the password, which would put it on a
// command line or in a config file. It belongs in a passfile.
var ErrPasswordInDSN = errors.New("pgkv: the DSN holds a password; put it in a passfile (passfile=PATH in the DSN, or PGPASSFILE, or ~/.pgpass)")

// Open connects to the database of dsn, a URL such as
// postgres://certmail@127.0.0.1:5432/certmail or a keyword/value string,
// and creates the table if it is missing. The password comes from a
// passfile (the DSN's passfile parameter, PGPASSFILE or ~/.pgpass; see
// PostgreSQL's "The Password File"), never from the DSN itself.
func Open(ctx context.Context, dsn string, opts Options) (*Engine, error) {
	if hasPassword(dsn) {
		return nil, ErrPasswordInDSN
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgkv: DSN: %w", err)
	}
	if opts.Password != "" {
		cfg.ConnConfig.Password = opts.Password
	}
	e := &Engine{timeout: opts.Timeout}
	if e.sole, err = newSole(opts); err != nil {
		return nil, fmt.Errorf("pgkv: %w", err)
	}
	e.ctx, e.abort = context.WithCancel(context.Background())
	e.soleStop = func() {}
	e.noNotify.Store(opts.NoNotify)
	if e.timeout <= 0 {
		e.timeout = 30 * time.Second
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = 16
		if opts.MaxConns > 0 {
			cfg.MaxConns = opts.MaxConns
		}
	}
	// An acknowledged commit is on disk (and, with synchronous
	// replication, on the standby): LMTP's 250 and APPEND's OK rely on it.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	// Operators find the sessions in pg_stat_activity by name.
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "certmail"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > e.timeout {
		cfg.ConnConfig.ConnectTimeout = e.timeout
	}
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, c: &e.stats}, nil
	}
	settings := sessionSettings(opts)
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		applySettings(ctx, c, settings)
		return nil
	}
	e.settings = settings
	e.connCfg = cfg.ConnConfig.Copy()
	e.channel = channelName(cfg.ConnConfig.RuntimeParams["search_path"])
	e.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		e.abort()
		return nil, fmt.Errorf("pgkv: %w", err)
	}
	if err := e.createTable(ctx); err != nil {
		e.pool.Close()
		e.abort()
		return nil, err
	}
	if err := e.createLeaseTable(ctx); err != nil {
		e.pool.Close()
		e.abort()
		return nil, err
	}
	return e, nil
}

// sessionSetting is a run-time setting of every session of the engine.
type sessionSetting struct{ name, value string }

// sessionSettings are the settings that bound how long the server keeps
// what a vanished or hung node's sessions hold (Options.DeadPeerAfter,
// Options.IdleInTransaction).
func sessionSettings(opts Options) []sessionSetting {
	var out []sessionSetting
	seconds := func(d time.Duration) string { return fmt.Sprint(max(1, int(d/time.Second))) }
	if dead := cmp.Or(opts.DeadPeerAfter, 20*time.Second); dead > 0 {
		out = append(out,
			sessionSetting{"tcp_keepalives_idle", seconds(dead / 2)},
			sessionSetting{"tcp_keepalives_interval", seconds(dead / 6)},
			sessionSetting{"tcp_keepalives_count", "3"})
	}
	if idle := cmp.Or(opts.IdleInTransaction, 10*time.Minute); idle > 0 {
		out = append(out, sessionSetting{"idle_in_transaction_session_timeout", fmt.Sprint(idle.Milliseconds())})
	}
	return out
}

// applySettings sets settings on a new session, in one round trip. They
// are set after the connection is made, not sent in its startup packet,
// because a PostgreSQL-compatible engine without one of them (CockroachDB
// keeps keepalives in cluster settings) would refuse the connection; here
// it refuses only the setting, and the session goes on with the server's
// default.
func applySettings(ctx context.Context, c *pgx.Conn, settings []sessionSetting) {
	if len(settings) == 0 {
		return
	}
	var sql strings.Builder
	args := make([]any, 0, 2*len(settings))
	sql.WriteString("SELECT ")
	for i, st := range settings {
		if i > 0 {
			sql.WriteString(", ")
		}
		fmt.Fprintf(&sql, "set_config($%d, $%d, false)", 2*i+1, 2*i+2)
		args = append(args, st.name, st.value)
	}
	c.Exec(ctx, sql.String(), args...) // best effort: see above
}

// Abort makes every statement in flight, and every later one, fail at
// once (with context.Canceled) instead of waiting up to Options.Timeout
// for a database that does not answer: a node whose shutdown budget has
// run out calls it, so that it stops in time, whatever the database does.
// Nothing is committed that was not; a transaction whose COMMIT was in
// flight may or may not have committed, as after any lost connection.
// The engine is then good only for Close.
func (e *Engine) Abort() { e.abort() }

// hasPassword reports whether dsn carries a password, as a URL's
// user:password or a keyword/value password=.
func hasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return false // ParseConfig reports it
		}
		_, set := u.User.Password()
		return set || u.Query().Has("password")
	}
	for _, f := range strings.Fields(dsn) {
		if strings.HasPrefix(f, "password=") {
			return true
		}
	}
	return false
}

// createTable creates the table if it is missing. Nodes starting at once
// may race to create it; the loser sees the winner's table on its retry.
//
// Values are compressed with lz4 where the server has it (PostgreSQL 14
// and later, built with lz4 as Debian's is): against the default pglz,
// writing a 1.1 MB message took a quarter of the time and stored 18% less
// (pgkv.md). Servers without it (CockroachDB, YugabyteDB, other builds)
// refuse the clause, and get the plain table.
func (e *Engine) createTable(ctx context.Context) error {
	const (
		lz4   = `CREATE TABLE IF NOT EXISTS ` + Table + ` (k bytea PRIMARY KEY, v bytea COMPRESSION lz4 NOT NULL)`
		plain = `CREATE TABLE IF NOT EXISTS ` + Table + ` (k bytea PRIMARY KEY, v bytea NOT NULL)`
	)
	var err error
	ddl := lz4
	for range 4 {
		cctx, cancel := context.WithTimeout(ctx, e.timeout)
		_, err = e.pool.Exec(cctx, ddl)
		cancel()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) {
			break
		}
		if pgErr.Code != "23505" && pgErr.Code != "42P07" {
			if ddl == plain {
				break
			}
			ddl = plain
		}
	}
	if err != nil {
		return fmt.Errorf("pgkv: creating table %s: %w", Table, err)
	}
	return nil
}

// Close closes the connection pool. Transactions must have ended.
func (e *Engine) Close() error {
	e.soleStop()
	e.soleWG.Wait()
	if e.ctx.Err() == nil {
		e.dropSole()
	}
	e.parkMu.Lock()
	e.closed = true
	parked := e.parked
	e.parked = nil
	e.parkMu.Unlock()
	for _, p := range parked {
		p.timer.Stop()
		e.finish(p.c)
	}
	if e.ctx.Err() == nil {
		e.pool.Close()
		e.abort()
		return nil
	}
	// Aborted: the pool's close waits for each broken connection's
	// cancel request, which a server that does not answer never
	// acknowledges (pgx gives it 15 s). The process is stopping; it does
	// not wait longer than abortedCloseWait.
	done := make(chan struct{})
	go func() { e.pool.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(abortedCloseWait):
	}
	return nil
}

// abortedCloseWait bounds how long Close waits for the pool after Abort.
const abortedCloseWait = 100 * time.Millisecond

// park keeps c, whose read-only transaction has ended, for the next
// transaction, or commits and releases it after parkFor.
func (e *Engine) park(c *pgxpool.Conn) {
	e.parkMu.Lock()
	defer e.parkMu.Unlock()
	if e.closed {
		go e.finish(c)
		return
	}
	p := &parkedConn{c: c}
	p.timer = time.AfterFunc(parkFor, func() {
		e.parkMu.Lock()
		i := slices.Index(e.parked, p)
		if i >= 0 {
			e.parked = slices.Delete(e.parked, i, i+1)
		}
		e.parkMu.Unlock()
		if i >= 0 { // else a transaction took it
			e.finish(p.c)
		}
	})
	e.parked = append(e.parked, p)
}

// unpark takes the most recently parked connection, if any.
func (e *Engine) unpark() *pgxpool.Conn {
	e.parkMu.Lock()
	defer e.parkMu.Unlock()
	n := len(e.parked)
	if n == 0 {
		return nil
	}
	p := e.parked[n-1]
	e.parked = e.parked[:n-1]
	p.timer.Stop()
	return p.c
}

// finish commits a parked connection's read-only transaction and returns
// the connection to the pool (which drops it if that failed).
func (e *Engine) finish(c *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
	defer cancel()
	c.Exec(ctx, "COMMIT")
	c.Release()
}

// Sync returns at once: a commit is durable when Commit returns
// (synchronous_commit on).
func (e *Engine) Sync() error { return nil }

// Setting returns a run-time setting as a session of the engine has it
// (current_setting): a node checks synchronous_commit with it at start.
func (e *Engine) Setting(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	var v string
	if err := e.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
		return "", fmt.Errorf("pgkv: current_setting(%s): %w", name, err)
	}
	return v, nil
}

// Begin starts a transaction. It takes a connection from the pool only at
// its first statement.
func (e *Engine) Begin(writable bool) (kv.Txn, error) {
	return &txn{e: e, writable: writable}, nil
}

// Dump streams every pair in key order from one REPEATABLE READ snapshot,
// page by page, without blocking writers.
func (e *Engine) Dump(fn func(key, value []byte) error) error {
	t := &txn{e: e}
	defer t.Discard()
	if err := t.Scan(kv.Range{}, fn); err != nil {
		return err
	}
	return t.Commit()
}

const (
	beginWrite = "BEGIN ISOLATION LEVEL SERIALIZABLE"
	beginRead  = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
	getSQL     = "SELECT v FROM " + Table + " WHERE k = $1"
	getManySQL = "SELECT k, v FROM " + Table + " WHERE k = ANY($1::bytea[])"
	upsertSQL  = "INSERT INTO " + Table + " (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
	deleteSQL  = "DELETE FROM " + Table + " WHERE k = ANY($1::bytea[])"
)

// txn is a kv.Txn. Its writes stay in memory until Commit, which sends
// them with COMMIT in one batch; reads see them through the overlay.
type txn struct {
	e        *Engine
	writable bool
	conn     *pgxpool.Conn // from the first statement on
	parked   bool          // conn still has a read-only transaction to COMMIT (Engine.park)
	begun    bool          // BEGIN has been sent
	done     bool
	err      error // a statement failed: the server has aborted the transaction

	writes map[string]write
	sorted []string // the keys of writes in order, when !dirty
	dirty  bool
	// notify holds the payloads of Engine.Notify, sent with COMMIT.
	notify []string
	// stream is a scan's statement whose rows are still being read: it
	// has the connection until settle.
	stream *stream
}

// settle frees the connection of a scan's statement still being read,
// reading its rest into memory: the scan's callback is reading the
// transaction, or the transaction ends.
func (t *txn) settle() {
	if t.stream != nil {
		t.stream.settle() // a failure is the transaction's (fail)
	}
}

// write is a pending Set (value, possibly empty) or Delete.
type write struct {
	value  []byte
	delete bool
}

var errDone = errors.New("pgkv: transaction has ended")

func (t *txn) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.e.ctx, t.e.timeout)
}

// usable reports why the transaction cannot run another statement.
func (t *txn) usable() error {
	if t.done {
		return errDone
	}
	return t.err
}

// fail records a statement's failure: PostgreSQL has aborted the
// transaction, so every later call returns the same error.
func (t *txn) fail(op string, err error) error {
	t.err = mapErr(op, err)
	return t.err
}

// mapErr puts a server error in kv's terms.
func mapErr(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
		return fmt.Errorf("pgkv: %s: %w (%w)", op, kv.ErrConflict, err)
	}
	return fmt.Errorf("pgkv: %s: %w", op, err)
}

func (t *txn) acquire(ctx context.Context) error {
	if t.conn != nil {
		return nil
	}
	if c := t.e.unpark(); c != nil {
		t.conn, t.parked = c, true
		return nil
	}
	c, err := t.e.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	t.conn = c
	return nil
}

// prologue queues what must run before the transaction's first statement:
// the COMMIT of a parked connection's previous transaction, and BEGIN.
func (t *txn) prologue(b *pgx.Batch) {
	if t.parked {
		b.Queue("COMMIT")
	}
	if t.writable {
		b.Queue(beginWrite)
	} else {
		b.Queue(beginRead)
	}
}

// execPrologue reads the prologue's results. retry: the parked
// connection was dead (the server restarted, or ended an idle session);
// it is dropped and the caller runs its batch again on a fresh one.
func (t *txn) execPrologue(br pgx.BatchResults) (retry bool, err error) {
	if t.parked {
		t.parked = false
		if _, err := br.Exec(); err != nil {
			br.Close()
			t.conn.Conn().Close(context.Background())
			t.conn.Release()
			t.conn = nil
			return true, err
		}
	}
	if _, err := br.Exec(); err != nil {
		return false, err
	}
	t.begun = true
	t.e.stats.transactions.Add(1)
	return false, nil
}

// query runs one statement and calls each for its rows. The transaction's
// BEGIN, if not sent yet, goes in the same round trip. An error from each
// is returned as it is and leaves the transaction usable.
func (t *txn) query(op, sql string, args []any, each func(pgx.Rows) error) error {
	t.settle()
	if err := t.usable(); err != nil {
		return err
	}
	ctx, cancel := t.ctx()
	defer cancel()
	if err := t.acquire(ctx); err != nil {
		return t.fail(op, err)
	}
	var rows pgx.Rows
	var br pgx.BatchResults
	var err error
	for !t.begun {
		b := &pgx.Batch{}
		t.prologue(b)
		b.Queue(sql, args...)
		br = t.conn.SendBatch(ctx, b)
		retry, perr := t.execPrologue(br)
		if retry {
			if err := t.acquire(ctx); err != nil {
				return t.fail(op, err)
			}
			continue
		}
		if perr != nil {
			br.Close()
			return t.fail(op, perr)
		}
		rows, err = br.Query()
	}
	if br == nil {
		rows, err = t.conn.Query(ctx, sql, args...)
	}
	var eachErr error
	if err == nil {
		for rows.Next() {
			if eachErr = each(rows); eachErr != nil {
				break
			}
		}
		rows.Close()
		err = rows.Err()
	}
	if br != nil {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return t.fail(op, err)
	}
	return eachErr
}

func (t *txn) Get(key, dst []byte) ([]byte, error) {
	var out []byte
	err := t.GetFunc(key, func(v []byte) error {
		out = append(dst[:0], v...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []byte{} // found, empty
	}
	return out, nil
}

func (t *txn) GetFunc(key []byte, fn func(value []byte) error) error {
	if w, ok := t.writes[string(key)]; ok {
		if w.delete {
			return kv.ErrNotFound
		}
		return fn(w.value)
	}
	found := false
	err := t.query("get", getSQL, []any{key}, func(rows pgx.Rows) error {
		var v []byte
		if err := rowBytes(rows, &v); err != nil {
			return fmt.Errorf("pgkv: get: %w", err)
		}
		found = true
		return fn(v)
	})
	if err != nil {
		return err
	}
	if !found {
		return kv.ErrNotFound
	}
	return nil
}

// maxGetMany bounds the keys of one GetMany statement.
const maxGetMany = 1000

// GetMany reads the keys in one statement (a thousand keys a statement):
// one round trip where GetFunc for each would take one each.
func (t *txn) GetMany(keys [][]byte, fn func(i int, value []byte) error) error {
	if err := t.usable(); err != nil {
		return err
	}
	var ask [][]byte
	at := make(map[string][]int, len(keys))
	for i, k := range keys {
		if w, ok := t.writes[string(k)]; ok {
			if w.delete {
				continue
			}
			if err := fn(i, w.value); err != nil {
				return stopped(err)
			}
			continue
		}
		if _, dup := at[string(k)]; !dup {
			ask = append(ask, k)
		}
		at[string(k)] = append(at[string(k)], i)
	}
	for len(ask) > 0 {
		chunk := ask[:min(len(ask), maxGetMany)]
		ask = ask[len(chunk):]
		var scanErr error
		err := t.query("get many", getManySQL, []any{chunk}, func(rows pgx.Rows) error {
			var k, v []byte
			if err := rowBytes(rows, &k, &v); err != nil {
				scanErr = fmt.Errorf("pgkv: get many: %w", err)
				return scanErr
			}
			for _, i := range at[string(k)] {
				if err := fn(i, v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			if err == scanErr {
				return err
			}
			return stopped(err)
		}
	}
	return nil
}

// stopped is what a read returns when its callback returned err: nil for
// kv.ErrStop.
func stopped(err error) error {
	if errors.Is(err, kv.ErrStop) {
		return nil
	}
	return err
}

func (t *txn) Set(key, value []byte) error {
	return t.put(key, write{value: value})
}

func (t *txn) Delete(key []byte) error {
	return t.put(key, write{delete: true})
}

func (t *txn) put(key []byte, w write) error {
	if err := t.usable(); err != nil {
		return err
	}
	if !t.writable {
		return kv.ErrReadOnly
	}
	if len(key) == 0 {
		return errors.New("pgkv: empty key")
	}
	if len(key) > kv.MaxKeySize {
		return fmt.Errorf("pgkv: key of %d bytes, longer than kv.MaxKeySize", len(key))
	}
	if t.writes == nil {
		t.writes = make(map[string]write)
	}
	k := string(key)
	if _, ok := t.writes[k]; !ok {
		t.dirty = true
	}
	if !w.delete && w.value == nil {
		w.value = []byte{} // an empty value, not SQL NULL
	}
	t.writes[k] = w
	return nil
}

// overlay returns the pending writes' keys within [lo, hi), in order.
func (t *txn) overlay(lo, hi []byte) []string {
	if len(t.writes) == 0 {
		return nil
	}
	if t.dirty {
		t.sorted = t.sorted[:0]
		for k := range t.writes {
			t.sorted = append(t.sorted, k)
		}
		slices.Sort(t.sorted) // Go compares strings bytewise, as bytea
		t.dirty = false
	}
	i, _ := slices.BinarySearch(t.sorted, string(lo))
	j := len(t.sorted)
	if hi != nil {
		j, _ = slices.BinarySearch(t.sorted, string(hi))
	}
	if i >= j {
		return nil
	}
	return t.sorted[i:j]
}

// Page sizes of a scan: the first page is small (most scans stop early or
// cover a few keys), each next one four times larger, up to maxPageRows
// rows and about maxPageBytes bytes (values may be message bodies).
//
// A scan that has fetched streamAfter pairs is a long one (loading a
// mailbox's index reads every message record of the mailbox): from then
// on it sends statements of up to maxStreamRows pairs and about
// maxStreamBytes, and reads each a page at a time, calling back for a
// page before reading the next (stream). A statement a page was cost a
// round trip and a statement's start, and PostgreSQL waited while the
// caller worked through the page; now it produces the rows meanwhile.
// Memory stays a page; a scan that stops early reads the rest of its
// statement for nothing; a read of the transaction from the callback
// first reads the rest of the statement into memory (settle), since a
// connection runs one statement at a time.
const (
	firstPageRows  = 32
	maxPageRows    = 4096
	maxPageBytes   = 4 << 20
	streamAfter    = 2048
	maxStreamRows  = 16384
	maxStreamBytes = 8 << 20
)

// page is one fetched page of a scan: its pairs, copied out of the driver.
type page struct {
	keys, values [][]byte
	buf          []byte
	spans        []span
}

// span locates a pair in page.buf: key buf[k0:k1], value buf[k1:v1].
type span struct{ k0, k1, v1 int }

func (t *txn) Scan(r kv.Range, fn func(key, value []byte) error) error {
	if err := t.usable(); err != nil {
		return err
	}
	lo, hi := r.Bounds()
	if hi != nil && bytes.Compare(lo, hi) >= 0 {
		return nil
	}
	ov := t.overlay(lo, hi)
	if r.Reverse {
		ov = slices.Clone(ov)
		slices.Reverse(ov)
	}
	// before reports whether key a comes before b in the scan's order.
	before := func(a, b []byte) bool {
		if r.Reverse {
			return bytes.Compare(a, b) > 0
		}
		return bytes.Compare(a, b) < 0
	}
	var (
		pg       page
		pi       int    // next pair of pg
		last     []byte // the last key fetched from the server
		more     = true // the server may have keys past last
		pageRows = firstPageRows
		avg      int // the bytes of a pair, on average, in the last page
		fetched  int // pairs fetched from the server
		emitted  int
		st       *stream // the statement being read, once streaming
	)
	if r.Expect > pageRows {
		// A scan the caller reads to its end (the change journal) is
		// one round trip, not one for each page growing from 32.
		pageRows = min(r.Expect, maxPageRows)
	}
	defer func() {
		if st != nil {
			st.finish() // stopped early: its failure is the transaction's
		}
	}()
	emit := func(k, v []byte) (stop bool, err error) {
		if r.KeysOnly {
			v = nil
		}
		if err := fn(k, v); err != nil {
			if errors.Is(err, kv.ErrStop) {
				return true, nil
			}
			return true, err
		}
		emitted++
		return r.Limit > 0 && emitted >= r.Limit, nil
	}
	for {
		for pi == len(pg.keys) && more {
			var err error
			if st == nil && fetched >= streamAfter && t.begun {
				want := maxStreamRows
				if avg > 0 {
					want = min(want, max(1, maxStreamBytes/avg))
				}
				if r.Limit > 0 {
					want = min(want, r.Limit-emitted)
				}
				if st, err = t.openStream(r, lo, hi, last, want); err != nil {
					return err
				}
			}
			if st != nil {
				if pg, err = st.page(pg, maxPageRows, maxPageBytes); err != nil {
					return err
				}
				if st.done && st.rest == nil {
					more = st.got == st.want
					st = nil
				}
			} else {
				want := pageRows
				if r.Limit > 0 && r.Limit-emitted < want {
					want = r.Limit - emitted
				}
				if pg, err = t.fetch(r, lo, hi, last, want, pg); err != nil {
					return err
				}
				more = len(pg.keys) == want
			}
			pi = 0
			fetched += len(pg.keys)
			if n := len(pg.keys); n > 0 {
				last = append(last[:0], pg.keys[n-1]...)
				avg = len(pg.buf) / n
				pageRows = nextPageRows(pageRows, avg)
			}
		}
		var dk []byte
		if pi < len(pg.keys) {
			dk = pg.keys[pi]
		}
		if dk == nil && len(ov) == 0 {
			return nil
		}
		// The overlay's next key, if it comes first or equals the
		// server's (a pending write replaces the stored pair).
		if len(ov) > 0 && (dk == nil || !before(dk, []byte(ov[0]))) {
			k := ov[0]
			ov = ov[1:]
			if dk != nil && string(dk) == k {
				pi++
			}
			w := t.writes[k]
			if w.delete {
				continue
			}
			if stop, err := emit([]byte(k), w.value); stop {
				return err
			}
			continue
		}
		v := pg.values[pi]
		pi++
		if stop, err := emit(dk, v); stop {
			return err
		}
	}
}

func nextPageRows(cur, avgBytes int) int {
	n := cur * 4
	if avgBytes > 0 && n > maxPageBytes/avgBytes {
		n = maxPageBytes / avgBytes
	}
	return max(1, min(n, maxPageRows))
}

// fetch reads the next page of a scan: at most n pairs past last (or from
// the range's start), in the scan's order. It reuses the memory of prev.
func (t *txn) fetch(r kv.Range, lo, hi, last []byte, n int, prev page) (page, error) {
	sql, args := scanSQL(r, lo, hi, last, n)
	pg := prev.reset()
	err := t.query("scan", sql, args, func(rows pgx.Rows) error { return pg.add(rows, r.KeysOnly) })
	if err != nil {
		return page{}, err
	}
	pg.seal()
	return pg, nil
}

// scanSQL is the statement of a scan's next n pairs past last (or from
// the range's start), in the scan's order.
func scanSQL(r kv.Range, lo, hi, last []byte, n int) (string, []any) {
	var sb strings.Builder
	args := make([]any, 0, 3)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	sb.WriteString("SELECT k")
	if !r.KeysOnly {
		sb.WriteString(", v")
	}
	sb.WriteString(" FROM " + Table + " WHERE ")
	switch {
	case last == nil:
		sb.WriteString("k >= " + arg(lo))
		if hi != nil {
			sb.WriteString(" AND k < " + arg(hi))
		}
	case !r.Reverse:
		sb.WriteString("k > " + arg(last))
		if hi != nil {
			sb.WriteString(" AND k < " + arg(hi))
		}
	default:
		sb.WriteString("k >= " + arg(lo) + " AND k < " + arg(last))
	}
	if r.Reverse {
		sb.WriteString(" ORDER BY k DESC")
	} else {
		sb.WriteString(" ORDER BY k")
	}
	sb.WriteString(" LIMIT " + arg(n))
	return sb.String(), args
}

// reset returns an empty page on the memory of p.
func (p page) reset() page {
	return page{keys: p.keys[:0], values: p.values[:0], buf: p.buf[:0], spans: p.spans[:0]}
}

// add copies the current row of rows into the page.
func (p *page) add(rows pgx.Rows, keysOnly bool) error {
	var k, v []byte
	var err error
	if keysOnly {
		err = rowBytes(rows, &k)
	} else {
		err = rowBytes(rows, &k, &v)
	}
	if err != nil {
		return fmt.Errorf("pgkv: scan: %w", err)
	}
	k0 := len(p.buf)
	p.buf = append(p.buf, k...)
	k1 := len(p.buf)
	p.buf = append(p.buf, v...)
	p.spans = append(p.spans, span{k0, k1, len(p.buf)})
	return nil
}

// seal makes the page's keys and values, slices into buf, once buf has
// stopped growing.
func (p *page) seal() {
	for _, s := range p.spans {
		p.keys = append(p.keys, p.buf[s.k0:s.k1:s.k1])
		p.values = append(p.values, p.buf[s.k1:s.v1:s.v1])
	}
}

// stream is a scan's statement whose rows the scan reads a page at a
// time, calling back for each page before it reads the next (streamAfter),
// while PostgreSQL goes on producing them.
type stream struct {
	t        *txn
	rows     pgx.Rows
	keysOnly bool
	cancel   context.CancelFunc
	// timer bounds each wait for rows by the engine's Timeout, not the
	// time the scan's callback takes between them.
	timer     *time.Timer
	want, got int
	// rest holds the rows settle read ahead to free the connection.
	rest *page
	done bool // rows is closed: rest, if any, is all that is left
}

// openStream sends the statement of the scan's next n pairs and returns
// the stream of its rows, which holds the connection until it is done
// (settle).
func (t *txn) openStream(r kv.Range, lo, hi, last []byte, n int) (*stream, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	sql, args := scanSQL(r, lo, hi, last, n)
	ctx, cancel := context.WithCancel(t.e.ctx)
	st := &stream{t: t, keysOnly: r.KeysOnly, cancel: cancel, want: n, timer: time.AfterFunc(t.e.timeout, cancel)}
	rows, err := t.conn.Query(ctx, sql, args...)
	st.rows = rows
	if err != nil {
		st.timer.Stop()
		cancel()
		if rows != nil {
			rows.Close()
		}
		return nil, t.fail("scan", err)
	}
	t.stream = st
	return st, nil
}

// page reads the stream's next page, at most n rows and about maxBytes,
// into the memory of prev.
func (st *stream) page(prev page, n, maxBytes int) (page, error) {
	if st.rest != nil {
		pg := *st.rest
		st.rest = nil
		return pg, nil
	}
	pg := prev.reset()
	if st.done {
		return pg, nil
	}
	st.timer.Reset(st.t.e.timeout)
	for len(pg.spans) < n && len(pg.buf) < maxBytes {
		if !st.rows.Next() {
			if err := st.finish(); err != nil {
				return page{}, err
			}
			break
		}
		if err := pg.add(st.rows, st.keysOnly); err != nil {
			st.finish()
			return page{}, err
		}
		st.got++
	}
	st.timer.Stop()
	pg.seal()
	return pg, nil
}

// settle reads the rest of the statement into rest, freeing the
// connection for another statement of the transaction (a read from the
// scan's callback).
func (st *stream) settle() error {
	st.timer.Reset(st.t.e.timeout)
	var pg page
	for st.rows.Next() {
		if err := pg.add(st.rows, st.keysOnly); err != nil {
			st.finish()
			return err
		}
		st.got++
	}
	if err := st.finish(); err != nil {
		return err
	}
	pg.seal()
	st.rest = &pg
	return nil
}

// finish closes the statement (reading what is left of it: a scan that
// stops early pays for the rest of its statement, bounded by
// maxStreamRows and maxStreamBytes) and frees the connection.
func (st *stream) finish() error {
	if st.done {
		return nil
	}
	st.done = true
	st.rows.Close()
	err := st.rows.Err()
	st.timer.Stop()
	st.cancel()
	if st.t.stream == st {
		st.t.stream = nil
	}
	if err != nil {
		return st.t.fail("scan", err)
	}
	return nil
}

// rowBytes sets cols to the bytea columns of the row, valid until the
// next row. In PostgreSQL's binary format, which pgx asks for unless its
// DSN says the simple protocol, a bytea is its bytes: the row's raw
// values are the columns, with nothing to decode or allocate (scanning
// into pgtype.DriverBytes took three allocations a row, most of a long
// scan's garbage). Text, the simple protocol's, goes through rows.Scan.
func rowBytes(rows pgx.Rows, cols ...*[]byte) error {
	raw, fds := rows.RawValues(), rows.FieldDescriptions()
	if len(raw) != len(cols) || len(fds) != len(cols) {
		return fmt.Errorf("%d columns, want %d", len(raw), len(cols))
	}
	text := false
	for _, fd := range fds {
		text = text || fd.Format != pgx.BinaryFormatCode
	}
	if !text {
		for i, c := range cols {
			*c = raw[i]
		}
		return nil
	}
	vals := make([][]byte, len(cols))
	dst := make([]any, len(cols))
	for i := range vals {
		dst[i] = &vals[i]
	}
	if err := rows.Scan(dst...); err != nil {
		return err
	}
	for i, c := range cols {
		*c = vals[i]
	}
	return nil
}

// Commit sends the pending writes and COMMIT in one batch.
func (t *txn) Commit() error {
	t.settle()
	if err := t.usable(); err != nil {
		return err
	}
	defer t.end()
	if len(t.writes) == 0 && len(t.notify) == 0 {
		if !t.begun || !t.writable {
			return nil // a read-only transaction's COMMIT waits (end, Engine.park)
		}
		ctx, cancel := t.ctx()
		defer cancel()
		if _, err := t.conn.Exec(ctx, "COMMIT"); err != nil {
			return t.fail("commit", err)
		}
		return nil
	}
	ctx, cancel := t.ctx()
	defer cancel()
	for {
		if err := t.acquire(ctx); err != nil {
			return t.fail("commit", err)
		}
		b := &pgx.Batch{}
		prologue := !t.begun
		if prologue {
			t.prologue(b)
		}
		rest := -b.Len()
		guard := b.Len()
		if len(t.writes) > 0 {
			b.Queue(leaseGuardSQL, t.e.sole.me)
		} else {
			guard = -1
		}
		t.queueWrites(b)
		for _, p := range t.notify {
			// In the transaction: delivered after, and only if, it commits.
			b.Queue(notifySQL, t.e.channel, p)
		}
		b.Queue("COMMIT")
		rest += b.Len()
		br := t.conn.SendBatch(ctx, b)
		var err error
		if prologue {
			var retry bool
			if retry, err = t.execPrologue(br); retry {
				continue
			}
		}
		for i := 0; err == nil && i < rest; i++ {
			_, err = br.Exec()
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil && guard >= 0 && guardFailed(err) {
			// Another engine holds the sole-writer lease: ask it to let
			// go, wait, and have the caller run the transaction again.
			t.fail("commit", err)
			if werr := t.e.awaitSole(ctx); werr != nil {
				return fmt.Errorf("pgkv: commit: %w (waiting for the sole-writer lease: %w)", kv.ErrConflict, werr)
			}
			return fmt.Errorf("pgkv: commit: %w (another node held the sole-writer lease)", kv.ErrConflict)
		}
		if err != nil {
			return t.fail("commit", err)
		}
		return nil
	}
}

// queueWrites queues the pending writes in key order (as every node
// writes them, which keeps nodes from deadlocking on each other's rows):
// upserts and deletes of up to a thousand rows or 32 MB a statement.
func (t *txn) queueWrites(b *pgx.Batch) {
	t.overlay(nil, nil) // sorts
	const maxRows, maxBytes = 1000, 32 << 20
	var setK, setV, delK [][]byte
	size := 0
	flush := func() {
		if len(setK) > 0 {
			b.Queue(upsertSQL, setK, setV)
		}
		if len(delK) > 0 {
			b.Queue(deleteSQL, delK)
		}
		setK, setV, delK, size = nil, nil, nil, 0
	}
	for _, k := range t.sorted {
		w := t.writes[k]
		if w.delete {
			delK = append(delK, []byte(k))
		} else {
			setK = append(setK, []byte(k))
			setV = append(setV, w.value)
		}
		size += len(k) + len(w.value)
		if len(setK)+len(delK) >= maxRows || size >= maxBytes {
			flush()
		}
	}
	flush()
}

// end releases the connection; a transaction still open on it (after a
// failure) is rolled back first, or the pool drops the connection.
func (t *txn) end() {
	if t.stream != nil {
		t.stream.finish()
	}
	t.done = true
	t.writes, t.sorted, t.notify = nil, nil, nil
	if t.conn == nil {
		return
	}
	if !t.writable && t.begun && t.err == nil && t.conn.Conn().PgConn().TxStatus() == 'T' {
		t.e.park(t.conn)
		t.conn = nil
		return
	}
	if t.conn.Conn().PgConn().TxStatus() != 'I' && !t.conn.Conn().IsClosed() {
		ctx, cancel := t.ctx()
		t.conn.Exec(ctx, "ROLLBACK")
		cancel()
	}
	t.conn.Release()
	t.conn = nil
}

func (t *txn) Discard() {
	if t.done {
		return
	}
	t.end()
}

// countingConn counts the engine's round trips and bytes: a read that
// follows a write is the start of an answer.
type countingConn struct {
	net.Conn
	c       *counters
	waiting atomic.Bool // wrote since the last read (pgx may read on another goroutine while it writes)
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.c.sent.Add(uint64(n))
	if n > 0 {
		c.waiting.Store(true)
	}
	return n, err
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.c.received.Add(uint64(n))
	if n > 0 && c.waiting.Swap(false) {
		c.c.roundTrips.Add(1)
	}
	return n, err
}
