package kv

import (
	"context"
	"errors"
	"time"
)

// Notifier is implemented by engines that several processes share (kv/pgkv:
// many certmail nodes on one PostgreSQL database). Each process keeps
// state in memory that follows the store (the mailbox index, the change
// feed IMAP IDLE listens to), and must learn of commits that other
// processes made. A committing transaction publishes a wake-up with
// Notify; every subscriber, in every process, receives it after the
// commit, and never for a transaction that did not commit. Wake-ups say
// only that something committed: the subscriber reads what changed from
// the store itself (mailbox's change journal), so a lost wake-up delays
// it, and a subscriber also polls for that reason.
//
// An engine only one process opens (kv/badgerkv) does not implement it:
// every commit passes through that process.
type Notifier interface {
	// Notify arranges for payload (at most 1,000 bytes) to be delivered
	// to every subscriber, this process's included, once txn commits,
	// and never if it does not. txn is a writable transaction of this
	// engine. On an engine that cannot deliver (ErrNoNotify from
	// Subscribe) it does nothing.
	Notify(txn Txn, payload string) error
	// Subscribe calls fn with the payload of each wake-up delivered,
	// from one goroutine, until stop is called. fn must not block. It
	// also calls fn("") each time the subscription is established
	// again after it was lost (the database restarted, the connection
	// broke): wake-ups sent meanwhile were lost, and the subscriber
	// should look for changes. Subscribe returns ErrNoNotify when the
	// database has no notifications (CockroachDB and YugabyteDB have
	// no LISTEN/NOTIFY): the subscriber then relies on polling alone.
	Subscribe(fn func(payload string)) (stop func(), err error)
}

// ErrNoNotify: the engine is shared but cannot deliver wake-ups.
var ErrNoNotify = errors.New("kv: the database delivers no notifications (no LISTEN/NOTIFY)")

// SoleWriter is implemented by engines several processes share that can
// tell one of them that, for now, it is the only one writing (kv/pgkv: a
// lease, see its sole.go). A process that follows the others' commits
// must read what they committed before it answers from memory (mailbox's
// catch-up, a round trip to the database); while it is the sole writer,
// nothing can have committed since its last read, and it need not.
type SoleWriter interface {
	// StartSole makes the engine take the role whenever no other
	// process has written for a while, and hold it until one wants to
	// write, until ctx ends. Every write another process makes that
	// this one must see writes a key under watch (mailbox's change
	// journal).
	StartSole(ctx context.Context, watch []byte)
	// Sole reports whether no other process can have committed a write
	// since readBegan (the start of this process's last read of what
	// the others committed).
	Sole(readBegan time.Time) bool
}
