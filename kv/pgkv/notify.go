package pgkv

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"certmail/kv"
)

// Wake-ups between nodes (kv.Notifier) are PostgreSQL's LISTEN/NOTIFY: a
// committing transaction runs pg_notify in the same batch as its COMMIT,
// so the notification is sent when, and only if, it commits (NOTIFY is
// transactional); each subscriber holds a connection of its own, outside
// the pool, that LISTENs and is opened again whenever it breaks.

var _ kv.Notifier = (*Engine)(nil)

const notifySQL = "SELECT pg_notify($1, $2)"

// channelName is the notification channel of the engine's table: one per
// schema (search_path), so that stores in different schemas of one
// database (the tests') do not wake each other. Channel names are
// identifiers: at most 63 bytes, hence the hash.
func channelName(searchPath string) string {
	if searchPath == "" {
		return Table
	}
	h := fnv.New64a()
	h.Write([]byte(searchPath))
	return fmt.Sprintf("%s_%016x", Table, h.Sum64())
}

// Notify sends payload to every subscriber when txn commits.
func (e *Engine) Notify(tx kv.Txn, payload string) error {
	t, ok := tx.(*txn)
	if !ok || t.e != e || !t.writable {
		return errors.New("pgkv: Notify needs a writable transaction of the engine")
	}
	if len(payload) > 1000 {
		return errors.New("pgkv: notification payload longer than 1,000 bytes")
	}
	if !e.notifyWorks() {
		return nil
	}
	for _, p := range t.notify {
		if p == payload {
			return nil // PostgreSQL folds them anyway
		}
	}
	e.sole.noteOwn(payload)
	t.notify = append(t.notify, payload)
	return nil
}

// notifyWorks reports whether commits may carry pg_notify. The first
// call asks the server once: a commit carrying a pg_notify the server
// refuses would fail (CockroachDB, YugabyteDB without LISTEN/NOTIFY), and
// a process that only writes (a CLI command) never subscribes, where
// LISTEN's refusal would have told. Any refusal by the server turns
// notifications off; a broken connection leaves them on.
func (e *Engine) notifyWorks() bool {
	e.probe.Do(func() {
		if e.noNotify.Load() {
			return
		}
		ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
		defer cancel()
		// In a transaction rolled back: nobody is woken for nothing.
		tx, err := e.pool.Begin(ctx)
		if err != nil {
			return
		}
		defer tx.Rollback(ctx)
		_, err = tx.Exec(ctx, notifySQL, e.channel, "")
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			e.noNotify.Store(true)
		}
	})
	return !e.noNotify.Load()
}

// Subscribe LISTENs on a connection of its own and calls fn with each
// payload. It returns once the first LISTEN has succeeded, or with
// kv.ErrNoNotify if the database refuses LISTEN, or with the error that
// kept it from connecting.
func (e *Engine) Subscribe(fn func(payload string)) (func(), error) {
	if e.noNotify.Load() {
		return nil, kv.ErrNoNotify
	}
	ctx, cancel := context.WithCancel(e.ctx)
	conn, err := e.listen(ctx)
	if err != nil {
		cancel()
		var pgErr *pgconn.PgError
		// 0A000 feature_not_supported: CockroachDB (issue 41522),
		// YugabyteDB before 2025.2.3 or without
		// yb_enable_listen_notify; 42601 a parser that has no LISTEN.
		if errors.As(err, &pgErr) && (pgErr.Code == "0A000" || pgErr.Code == "42601") {
			e.noNotify.Store(true)
			return nil, fmt.Errorf("%w: %w", kv.ErrNoNotify, err)
		}
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	e.soleListening(+1)
	go func() {
		defer wg.Done()
		e.receive(ctx, conn, fn)
	}()
	return func() { cancel(); wg.Wait() }, nil
}

// listen opens a connection and LISTENs on the engine's channel.
func (e *Engine) listen(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, e.connCfg.Copy())
	if err != nil {
		return nil, fmt.Errorf("pgkv: connecting to listen: %w", err)
	}
	applySettings(cctx, conn, e.settings)
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{e.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// Pauses between attempts to LISTEN again: doubling from the first to the
// last. The last is short because a node hears of other nodes' commits
// only by polling (every follow_interval) until it listens again, and one
// more connection attempt a second costs the database nothing; a longer
// pause (it was 5 s) only made a node slow to hear of commits at once
// after the database came back.
const (
	firstListenPause = 50 * time.Millisecond
	maxListenPause   = time.Second
)

// receive delivers notifications until ctx ends, connecting again (with
// a growing pause, up to maxListenPause) whenever the connection breaks,
// and telling fn so with an empty payload once it listens again.
func (e *Engine) receive(ctx context.Context, conn *pgx.Conn, fn func(string)) {
	pause := firstListenPause
	for {
		for conn != nil {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				conn.Close(context.Background())
				conn = nil
				e.soleListening(-1) // listening again below, +1
				break
			}
			pause = firstListenPause
			if e.sole.heard(n.Payload, e.dropSoleSoon) {
				continue // a writer asking for the lease: ours alone
			}
			fn(n.Payload)
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, maxListenPause)
		var err error
		if conn, err = e.listen(ctx); err == nil {
			e.soleListening(+1)
			fn("") // what was sent while we were away is lost
		}
	}
}
