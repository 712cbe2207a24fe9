package imapsrv

import (
	"crypto/tls"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/metrics"
)

// What an operator sees of sessions: one log line per login (account,
// client address, TLS, and through the session's logger the client's name
// and version if it sent ID) and the metrics of sessions and commands.

var _ imapserver.SessionCommandObserver = (*session)(nil)

// CommandDone counts each answered command and its latency (the go-imap
// patch calls it; the name is one the server dispatches, or UNKNOWN).
func (sess *session) CommandDone(name string, d time.Duration, status imap.StatusResponseType) {
	st := metrics.StatusOK
	switch status {
	case imap.StatusResponseTypeNo:
		st = metrics.StatusNo
	case imap.StatusResponseTypeBad, imap.StatusResponseTypeBye:
		st = metrics.StatusBad
	}
	sess.srv.opts.Metrics.IMAPCommand(name, d, st)
}

// logLogin writes the login line. The session's logger names the client
// when it sent ID first (id.go); an ID sent after login (Thunderbird's
// order) gets its own line naming the account.
func (sess *session) logLogin() {
	sess.log.Info("login", "proto", "imap", "user", sess.acct, "remote", sess.remote(), "tls", sess.usesTLS())
}

// usesTLS says whether the connection is encrypted (implicit TLS or after
// STARTTLS), looking under the layers the session reaches it through.
func (sess *session) usesTLS() bool {
	if sess.conn == nil {
		return false
	}
	c := sess.conn.NetConn()
	for range 8 { // a few layers at most
		switch x := c.(type) {
		case *tls.Conn:
			return true
		case *literalGuard:
			c = x.Conn
		case *coalescingConn:
			c = x.Conn
		default:
			return false
		}
	}
	return false
}
