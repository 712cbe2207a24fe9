package imapsrv

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"
)

// A command that can run long (SEARCH) runs under a context that ends
// when the session ends, when the command's time limit passes, or when the
// client hangs up. imapserver reads nothing from the client while a
// command runs (and the literal guard hands it one line at a time), so a
// hang-up would only be seen after the command: the socket's state is
// looked at instead, every hangupPoll.

// hangupPoll is how often a running command checks whether its client
// is still connected.
const hangupPoll = 50 * time.Millisecond

var (
	errCommandTimeout = errors.New("time limit reached")
	errConnClosed     = errors.New("connection closed")
	errSessionEnded   = errors.New("session ended")
)

// commandContext is the context of one long command; stop releases it.
// timeout 0 is no time limit.
func (sess *session) commandContext(timeout time.Duration) (ctx context.Context, stop func()) {
	parent := sess.ctx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancelCause(parent)
	var cancelTimeout context.CancelFunc = func() {}
	if timeout > 0 {
		ctx, cancelTimeout = context.WithTimeoutCause(ctx, timeout, errCommandTimeout)
	}
	var sc syscall.Conn
	if sess.conn != nil {
		sc = socketOf(sess.conn.NetConn())
	}
	if sc != nil {
		go func() {
			tick := time.NewTicker(hangupPoll)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if peerGone(sc) {
						cancel(errConnClosed)
						return
					}
				}
			}
		}()
	}
	return ctx, func() {
		cancelTimeout()
		cancel(nil)
	}
}

// socketOf finds the socket under the layers a connection reaches the
// session through (TLS, the literal guard, the coalescing writer); nil if
// there is none.
func socketOf(c net.Conn) syscall.Conn {
	for range 8 { // a few layers at most
		switch x := c.(type) {
		case *tls.Conn:
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
