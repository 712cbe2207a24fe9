package pgkv

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"certmail/kv"
)

// The sole-writer lease. A node that follows other nodes' commits reads
// the change journal before every command that reports state (a
// catch-up: one round trip), because another process may have committed
// since its last read. While no other process is writing, that read finds
// nothing. The lease lets a node know that: while it holds it, no other
// engine can commit a write, so its last read is still current and the
// catch-up can be skipped (kv.SoleWriter).
//
// The lease is one row of a table of its own (leaseTable), with the
// holder and an expiry on the database's clock. How it holds:
//
//   - Every commit that writes (any engine's) reads the row in its batch
//     (leaseGuardSQL), and fails, divided by zero, if another engine holds
//     an unexpired lease. The writer then asks the holder to let go (the
//     row's wanted column, and a notification), waits until it has, and
//     returns kv.ErrConflict: the caller's retry commits.
//   - A node takes the lease only when it has seen no other writer for a
//     while (Options.SoleQuiet), in a SERIALIZABLE transaction that reads
//     every key of the watched prefix (the change journal) and writes the
//     row. A writer whose guard read the row before the take and which
//     commits after it would have written a journal key the take read:
//     PostgreSQL's serializable isolation lets both commit only if the
//     writer's commit came before the take's read, so the holder's next
//     catch-up, begun after the take, sees it. The holder counts its
//     lease from that next read (Sole's readBegan).
//   - The holder renews the lease every SoleTTL/4; a renewal that finds
//     the row wanted since it took it fails, and the holder lets go. It
//     lets go at once when a writer's notification arrives, when its
//     listening connection breaks (it would not hear the next one), and
//     when a renewal fails: it stops counting on the lease first, then
//     expires the row. Its own count ends SoleTTL/4 before the row's
//     expiry, measured from before the renewal was sent.
//
// Every engine of a database must run this code (the guard); an older
// certmail writing beside a holder would not be stopped.

const leaseTable = "certmail_lease"

const (
	leaseName        = "sole"
	leaseWantPayload = "certmail-lease-wanted"

	leaseTableSQL = `CREATE TABLE IF NOT EXISTS ` + leaseTable + ` (name text PRIMARY KEY, holder bytea NOT NULL, since timestamptz NOT NULL, until timestamptz NOT NULL, wanted timestamptz NOT NULL)`
	// Times long past rather than -infinity, and '' rather than '\x',
	// which PostgreSQL-compatible engines may not all accept.
	leaseRowSQL  = `INSERT INTO ` + leaseTable + ` VALUES ('` + leaseName + `', ''::bytea, ` + leaseLongAgo + `, ` + leaseLongAgo + `, ` + leaseLongAgo + `) ON CONFLICT (name) DO NOTHING`
	leaseLongAgo = `'1970-01-01 00:00:00+00'::timestamptz`
	// leaseGuardSQL fails (division by zero, 22012) when another engine
	// holds the lease.
	leaseGuardSQL = `SELECT 1/(CASE WHEN holder <> $1 AND until > now() THEN 0 ELSE 1 END) FROM ` + leaseTable + ` WHERE name = '` + leaseName + `'`
	leaseHeldSQL  = `SELECT holder <> $1 AND until > clock_timestamp() FROM ` + leaseTable + ` WHERE name = '` + leaseName + `'`
	leaseWantSQL  = `UPDATE ` + leaseTable + ` SET wanted = clock_timestamp() WHERE name = '` + leaseName + `'`
	leaseTakeSQL  = `UPDATE ` + leaseTable + ` SET holder = $1, since = clock_timestamp(), until = clock_timestamp() + $2 * interval '1 millisecond' WHERE name = '` + leaseName + `' AND (holder = $1 OR until <= clock_timestamp())`
	leaseRenewSQL = `UPDATE ` + leaseTable + ` SET until = clock_timestamp() + $2 * interval '1 millisecond' WHERE name = '` + leaseName + `' AND holder = $1 AND until > clock_timestamp() AND wanted < since`
	leaseDropSQL  = `UPDATE ` + leaseTable + ` SET until = ` + leaseLongAgo + ` WHERE name = '` + leaseName + `' AND holder = $1`

	defaultSoleTTL   = 2 * time.Second
	defaultSoleQuiet = 5 * time.Second
)

var _ kv.SoleWriter = (*Engine)(nil)

// sole is an engine's side of the lease.
type sole struct {
	me         []byte // this engine, in the lease row
	ttl, quiet time.Duration

	mu sync.Mutex
	// since is when the engine took the lease (after the take
	// committed); zero when it does not hold it. until is when it stops
	// counting on it.
	since, until time.Time
	// lastOther is the last sign of another writer: a notification of
	// another engine's commit, or a writer asking for the lease.
	lastOther time.Time
	// running: StartSole's loop runs; listening: a subscription's
	// connection LISTENs (without it the holder would not hear a writer
	// ask, and would hold it up for a renewal period).
	running   bool
	listening int
	// own holds the payloads this engine notifies with (its commits).
	own map[string]bool
}

func newSole(opts Options) (*sole, error) {
	me := make([]byte, 16)
	if _, err := rand.Read(me); err != nil {
		return nil, err
	}
	return &sole{
		me:    me,
		ttl:   positiveOr(opts.SoleTTL, defaultSoleTTL),
		quiet: positiveOr(opts.SoleQuiet, defaultSoleQuiet),
		own:   make(map[string]bool),
	}, nil
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// createLeaseTable creates the lease's table and row if missing.
func (e *Engine) createLeaseTable(ctx context.Context) error {
	for _, sql := range []string{leaseTableSQL, leaseRowSQL} {
		var err error
		for range 4 { // nodes starting at once race to create it
			cctx, cancel := context.WithTimeout(ctx, e.timeout)
			_, err = e.pool.Exec(cctx, sql)
			cancel()
			var pgErr *pgconn.PgError
			if err == nil || !errors.As(err, &pgErr) || (pgErr.Code != "23505" && pgErr.Code != "42P07") {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("pgkv: creating table %s: %w", leaseTable, err)
		}
	}
	return nil
}

// Sole reports whether no other engine can have committed a write since
// readBegan: this engine holds the lease, took it before readBegan, and
// counts on it still.
func (e *Engine) Sole(readBegan time.Time) bool {
	s := e.sole
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	// Both clocks: Go's monotonic clock stands still while the machine
	// is suspended (a paused VM), the database's does not; the wall
	// clock, set right again after a resume, shows the pause.
	return !s.since.IsZero() && readBegan.After(s.since) && now.Before(s.until) && now.Round(0).Before(s.until.Round(0))
}

// StartSole makes the engine take the lease whenever it has seen no other
// writer for Options.SoleQuiet, until ctx ends. watch is the prefix of
// the keys every write another engine must be seen by writes (the change
// journal): the take reads them all.
func (e *Engine) StartSole(ctx context.Context, watch []byte) {
	s := e.sole
	s.mu.Lock()
	if s.running || e.noNotify.Load() {
		s.mu.Unlock()
		return
	}
	s.running = true
	s.lastOther = time.Now()
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	e.soleStop = cancel
	e.soleWG.Add(1)
	go func() {
		defer e.soleWG.Done()
		t := time.NewTicker(s.ttl / 4)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				e.dropSole()
				return
			case <-e.ctx.Done():
				return
			case <-t.C:
			}
			e.tendSole(watch)
		}
	}()
}

// tendSole renews the lease it holds, or takes it if the time is right.
func (e *Engine) tendSole(watch []byte) {
	s := e.sole
	s.mu.Lock()
	holding := !s.since.IsZero()
	ready := s.listening > 0 && time.Since(s.lastOther) >= s.quiet
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
	defer cancel()
	sent := time.Now()
	if holding {
		tag, err := e.pool.Exec(ctx, leaseRenewSQL, s.me, s.ttl.Milliseconds())
		if err != nil || tag.RowsAffected() != 1 {
			e.dropSole()
			return
		}
		s.mu.Lock()
		if !s.since.IsZero() { // not dropped meanwhile
			s.until = sent.Add(s.ttl - s.ttl/4)
		}
		s.mu.Unlock()
		return
	}
	if !ready {
		return
	}
	took, err := e.takeSole(ctx, watch)
	if err != nil || !took {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listening == 0 || s.lastOther.After(sent) {
		// Lost the connection, or another writer showed up, while it
		// was taking: let go (it never counted on it).
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
		e.pool.Exec(ctx, leaseDropSQL, s.me)
		cancel()
		s.mu.Lock()
		return
	}
	s.since, s.until = time.Now(), sent.Add(s.ttl-s.ttl/4)
}

// takeSole takes the lease, in a transaction that reads every key under
// watch (see the top of this file).
func (e *Engine) takeSole(ctx context.Context, watch []byte) (bool, error) {
	tx, err := e.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx)
	var n int64
	lo, hi := kv.Prefix(watch).Bounds()
	if hi == nil {
		err = tx.QueryRow(ctx, "SELECT count(*) FROM "+Table+" WHERE k >= $1", lo).Scan(&n)
	} else {
		err = tx.QueryRow(ctx, "SELECT count(*) FROM "+Table+" WHERE k >= $1 AND k < $2", lo, hi).Scan(&n)
	}
	if err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, leaseTakeSQL, e.sole.me, e.sole.ttl.Milliseconds())
	if err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// held reports whether the engine holds the lease (for tests).
func (s *sole) held() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.since.IsZero()
}

// dropSole stops counting on the lease, then expires its row (if that
// fails, the row expires by itself).
func (e *Engine) dropSole() {
	if e.stopCounting() {
		ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
		defer cancel()
		e.pool.Exec(ctx, leaseDropSQL, e.sole.me)
	}
}

// dropSoleSoon is dropSole for callers that must not wait on the
// database (the listening goroutine, whose connection may just have
// broken): it stops counting at once and expires the row in the
// background.
func (e *Engine) dropSoleSoon() {
	if e.stopCounting() {
		go func() { // ends with the engine (e.ctx) at the latest
			ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
			defer cancel()
			e.pool.Exec(ctx, leaseDropSQL, e.sole.me)
		}()
	}
}

// stopCounting stops counting on the lease, reporting whether it held it.
func (e *Engine) stopCounting() bool {
	s := e.sole
	s.mu.Lock()
	defer s.mu.Unlock()
	was := !s.since.IsZero()
	s.since, s.until = time.Time{}, time.Time{}
	s.lastOther = time.Now()
	return was
}

// heard sees each notification before the subscribers: a writer asking
// for the lease (consumed: true), or another engine's commit.
func (s *sole) heard(payload string, drop func()) bool {
	s.mu.Lock()
	want := payload == leaseWantPayload
	if want || (payload != "" && !s.own[payload]) {
		s.lastOther = time.Now()
	}
	holding := !s.since.IsZero()
	s.mu.Unlock()
	if want && holding {
		drop()
	}
	return want
}

// listen counts the engine's listening connections up or down; with none
// it cannot hear a writer ask, and lets the lease go.
func (e *Engine) soleListening(delta int) {
	s := e.sole
	s.mu.Lock()
	s.listening += delta
	none := s.listening == 0
	s.mu.Unlock()
	if none {
		e.dropSoleSoon()
	}
}

// noteOwn records a payload this engine's commits notify with.
func (s *sole) noteOwn(payload string) {
	s.mu.Lock()
	s.own[payload] = true
	s.mu.Unlock()
}

// awaitSole is what a writer whose guard failed does: it asks the holder
// to let go and waits until the lease is free (the holder let go, or
// its lease expired), at most a lease's time and a second.
func (e *Engine) awaitSole(ctx context.Context) error {
	if _, err := e.pool.Exec(ctx, leaseWantSQL); err != nil {
		return err
	}
	if !e.noNotify.Load() {
		e.pool.Exec(ctx, notifySQL, e.channel, leaseWantPayload)
	}
	deadline := time.Now().Add(e.sole.ttl + time.Second)
	for {
		var held bool
		if err := e.pool.QueryRow(ctx, leaseHeldSQL, e.sole.me).Scan(&held); err != nil {
			return err
		}
		if !held {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the sole-writer lease was not let go")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// guardFailed reports whether err is the lease guard's refusal.
func guardFailed(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "22012"
}
