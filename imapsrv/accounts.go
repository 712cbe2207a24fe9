package imapsrv

import (
	"errors"
	"log/slog"
	"sync"
)

// errAccountDeleted ends the sessions of a deleted account.
var errAccountDeleted = errors.New("account deleted")

// accountSessions are the logged-in sessions of each account, so that
// deleting an account logs them out. A session left running would go on
// as whoever is created next under the name: it would read their mail,
// and a COD by MOVE would have a custody key made for it under the old
// owner's password.
type accountSessions struct {
	mu sync.Mutex
	m  map[string]map[*session]struct{}
}

func (a *accountSessions) add(sess *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	set := a.m[sess.acct]
	if set == nil {
		set = make(map[*session]struct{})
		a.m[sess.acct] = set
	}
	set[sess] = struct{}{}
}

func (a *accountSessions) remove(sess *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if set := a.m[sess.acct]; set != nil {
		delete(set, sess)
		if len(set) == 0 {
			delete(a.m, sess.acct)
		}
	}
}

// end logs out every session of acct: the command running, if any, is
// cancelled and the connection closed (which the client sees as the
// server going away; RFC 9051 section 7.1.5 allows a BYE without a
// LOGOUT). It runs on the store's change feed and must not block: the
// connection is closed, not written to.
func (a *accountSessions) end(acct string, log *slog.Logger) {
	a.mu.Lock()
	set := a.m[acct]
	delete(a.m, acct)
	a.mu.Unlock()
	for sess := range set {
		if sess.cancel != nil {
			sess.cancel(errAccountDeleted)
		}
		if sess.conn != nil {
			sess.conn.NetConn().Close()
		}
		log.Info("session ended: account deleted", "user", acct, "remote", sess.remote())
	}
}
