package imapsrv

import (
	"net"
	"sync"
	"time"
)

// coalescingConn gathers what imapserver writes into fewer system calls.
//
// imapserver flushes its buffer at the end of every response line, so a
// FETCH of n messages costs n write(2) calls: in the benchmark's session
// mix a fifth of the server's CPU went to them, and UID FETCH 1:* (FLAGS)
// over 100,000 messages made 100,000 calls. This conn keeps what is
// written while the server is busy with a command and sends it when the
// server next reads from the client (it has then said everything it has to
// say for now), when the buffer fills, or after flushDelay at the latest.
// A write made while a read is waiting — an IDLE update, the server having
// nothing else to do — goes out at once.
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex
	buf     []byte
	reading int // Reads in progress
	err     error
	timer   *time.Timer
	armed   bool

	// Write deadlines. imapserver sets one before each response line
	// and clears it after: twice per message of a FETCH, and each call
	// on a TCP conn resets a runtime timer (a tenth of the time of
	// UID FETCH 1:* (FLAGS)). Only the writes that reach the socket
	// need one, so the deadline the writer asks for is remembered
	// (wanted), the latest one asked for while the buffered bytes were
	// written is what their flush gets (pending), and the socket's
	// deadline (applied) changes only when a write needs another.
	wanted, pending, applied time.Time
}

const (
	coalesceMax = 32 << 10
	// flushDelay bounds how long written data can wait when the server
	// neither reads nor writes more (a path that writes and then waits on
	// something else): latency, never a deadlock.
	flushDelay = 2 * time.Millisecond
)

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c}
	cc.timer = time.AfterFunc(time.Hour, cc.timerFlush)
	cc.timer.Stop()
	return cc
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.reading > 0 || len(c.buf)+len(p) > coalesceMax {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if c.reading > 0 || len(p) >= coalesceMax {
			c.applyDeadlineLocked(c.wanted)
			n, err := c.Conn.Write(p)
			if err != nil {
				c.err = err
			}
			return n, err
		}
	}
	c.buf = append(c.buf, p...)
	if c.wanted.After(c.pending) {
		c.pending = c.wanted
	}
	if !c.armed {
		c.armed = true
		c.timer.Reset(flushDelay)
	}
	return len(p), nil
}

func (c *coalescingConn) flushLocked() error {
	if c.err != nil {
		return c.err
	}
	if c.armed {
		c.armed = false
		c.timer.Stop()
	}
	if len(c.buf) == 0 {
		return nil
	}
	c.applyDeadlineLocked(c.pending)
	c.pending = time.Time{}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > coalesceMax*2 {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	if err != nil {
		c.err = err
	}
	return err
}

func (c *coalescingConn) timerFlush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed {
		c.flushLocked()
	}
}

// Flush sends what is buffered.
func (c *coalescingConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *coalescingConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if err := c.flushLocked(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.reading++
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.reading--
	c.mu.Unlock()
	return n, err
}

func (c *coalescingConn) applyDeadlineLocked(t time.Time) {
	if !t.Equal(c.applied) {
		c.Conn.SetWriteDeadline(t)
		c.applied = t
	}
}

// SetWriteDeadline records the deadline for the writes that follow (see
// the fields). A deadline that has already passed is how a writer says
// "no more writes" (crypto/tls sets one right after its close_notify
// alert, which would otherwise never leave the buffer, nor the BYE before
// it): what is buffered is sent first, and the deadline applies at once.
//
// Asking the clock is itself a tenth of a microsecond here, paid per FETCH
// line, so it is asked only when the new deadline is earlier than the one
// in force: imapserver's only move later, and crypto/tls sets "now" right
// after "now + 5 s".
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.IsZero() && !c.wanted.IsZero() && t.Before(c.wanted) && !t.After(time.Now()) {
		c.flushLocked()
		c.wanted = t
		c.applied = t
		return c.Conn.SetWriteDeadline(t)
	}
	c.wanted = t
	return nil
}

func (c *coalescingConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// closeFlushTimeout bounds how long Close waits to send what is buffered.
const closeFlushTimeout = time.Second

func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if len(c.buf) > 0 && c.err == nil {
		c.pending = time.Now().Add(closeFlushTimeout)
		c.flushLocked()
	}
	c.timer.Stop()
	c.armed = false
	c.mu.Unlock()
	return c.Conn.Close()
}
