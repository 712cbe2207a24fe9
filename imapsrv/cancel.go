package imapsrv

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"
)

// A command that can run long (SEARCH) stops when the session ends, when
// its time limit passes, or when the client hangs up. imapserver reads
// nothing from the client while a command runs (and the literal guard
// hands it one line at a time), so a hang-up would only be seen after the
// command: the socket's TCP state is looked at instead, every hangupPoll.
//
// The command asks (commandWatch.check) as it goes, rather than
// being told by a context.Context with a timer or a polling goroutine: a
// timer armed per SEARCH wakes an idle processor each time, which cost
// SEARCH UNSEEN over 10,000 messages 6% (about 30 us).

// hangupPoll is how often a running command checks whether its client
// is still connected.
const hangupPoll = 50 * time.Millisecond

// checkEvery: a loop over cheap steps (messages) checks once in this many
// (a power of 2): reading the clock per message would cost a SEARCH UNSEEN
// 40%, and even a counter in the watch cost 4%.
const checkEvery = 64

var (
	errCommandTimeout = errors.New("time limit reached")
	errConnClosed     = errors.New("connection closed")
	errSessionEnded   = errors.New("session ended")
)

// commandWatch says when a long command must stop. Not safe for
// concurrent use: one command's goroutine asks.
type commandWatch struct {
	ctx      context.Context // the session's
	sock     syscall.Conn    // nil: hang-ups are not seen
	deadline time.Time       // zero: no time limit
	nextPoll time.Time
	// err is why the command must stop, once it must.
	err error
}

// watchCommand starts watching a command; timeout 0 is no time limit.
func (sess *session) watchCommand(timeout time.Duration) *commandWatch {
	now := time.Now()
	w := &commandWatch{ctx: sess.ctx, nextPoll: now.Add(hangupPoll)}
	if timeout > 0 {
		w.deadline = now.Add(timeout)
	}
	if sess.conn != nil {
		w.sock = socketOf(sess.conn.NetConn())
	}
	return w
}

// check reports whether the command must stop (and sets err): the time
// limit has passed, or, at most every hangupPoll, the session has ended or
// the client has hung up.
func (w *commandWatch) check() bool {
	if w.err != nil {
		return true
	}
	now := time.Now()
	if !w.deadline.IsZero() && now.After(w.deadline) {
		w.err = errCommandTimeout
		return true
	}
	if now.Before(w.nextPoll) {
		return false
	}
	w.nextPoll = now.Add(hangupPoll)
	if w.ctx != nil && w.ctx.Err() != nil {
		w.err = errSessionEnded
		return true
	}
	if w.sock != nil && peerGone(w.sock) {
		w.err = errConnClosed
		return true
	}
	return false
}

// socketOf finds the socket under the layers a connection reaches the
// session through (TLS, compression, the literal guard, the coalescing
// writer); nil if
// there is none.
func socketOf(c net.Conn) syscall.Conn {
	for range 8 { // a few layers at most
		switch x := c.(type) {
		case interface{ NetConn() net.Conn }: // TLS, COMPRESS
			c = x.NetConn()
		case *literalGuard:
			c = x.Conn
		case *coalescingConn:
			c = x.Conn
		case syscall.Conn:
			return x
		default:
			return nil
		}
	}
	return nil
}
