package imapsrv

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
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
	// ended counts the accounts whose sessions end ended, so that a
	// login that was checking a password meanwhile can tell (addSince).
	ended uint64
}

// endedCount is the count of accounts ended so far, for addSince.
func (a *accountSessions) endedCount() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ended
}

// addSince adds sess, and reports whether an account was ended since
// the count was since: it may have been sess's, deleted after the login
// checked its password and before this, when end did not yet find sess
// to log out.
func (a *accountSessions) addSince(sess *session, since uint64) (maybeEnded bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addLocked(sess)
	return a.ended != since
}

func (a *accountSessions) add(sess *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addLocked(sess)
}

func (a *accountSessions) addLocked(sess *session) {
	set := a.m[sess.acct]
	if set == nil {
		set = make(map[*session]struct{})
		a.m[sess.acct] = set
	}
	set[sess] = struct{}{}
}

// all returns every logged-in session.
func (a *accountSessions) all() []*session {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*session
	for _, set := range a.m {
		for sess := range set {
			out = append(out, sess)
		}
	}
	return out
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

// byeAccountDeleted is the text of the BYE a deleted account's sessions
// get: a server that closes a connection says so first (RFC 9051 7.1.5,
// RFC 3501 7.1.5), and a client shows the text to its user rather than
// "connection lost" and a retry with a password that no longer works.
const byeAccountDeleted = "Account deleted: this session has ended"

// byeShutdown is the text of the BYE every logged-in session gets when
// the server stops (RFC 9051 7.1.5: a server closing the connection
// sends BYE first), so that a client tells a shutdown from a network
// failure and reconnects (to another node behind the same address).
const byeShutdown = "Server shutting down"

// byeWait bounds how long a BYE waits to be written (after the response
// being written, if any; to a client that reads nothing) before the
// connection is closed without it.
const byeWait = 2 * time.Second

// end logs out every session of acct: the command running, if any, is
// cancelled, and each gets an untagged BYE and its connection closed
// (session.bye). It runs on the store's change feed and must not block:
// the BYE is written by a goroutine of its own. A command the session
// reads before then does not run as the account (session.CommandStart):
// the name may already be someone else's.
func (a *accountSessions) end(acct string, log *slog.Logger) {
	a.mu.Lock()
	set := a.m[acct]
	delete(a.m, acct)
	a.ended++
	a.mu.Unlock()
	for sess := range set {
		sess.deleted.Store(true)
		if sess.cancel != nil {
			sess.cancel(errAccountDeleted)
		}
		if sess.conn != nil {
			go sess.bye(byeAccountDeleted)
		}
		log.Info("session ended: account deleted", "user", acct, "remote", sess.remote())
	}
}

// bye writes an untagged BYE with text and closes the connection, once
// whichever goroutine calls first. imapserver writes it as it writes
// any response, after the one in progress (FETCH's fast path writes whole
// responses: the BYE comes between two); a connection that does not
// take it within byeWait is closed without it.
func (sess *session) bye(text string) {
	sess.byeOnce.Do(func() {
		if sess.srv.beforeBye != nil {
			sess.srv.beforeBye()
		}
		conn := sess.conn.NetConn()
		t := time.AfterFunc(byeWait, func() { conn.Close() })
		defer t.Stop()
		if err := sess.conn.Bye(text); err != nil && !errors.Is(err, net.ErrClosed) {
			sess.srv.log.Debug("writing BYE", "remote", sess.remote(), "err", err)
		}
	})
}

// endDeleted is CommandStart's part once the account has been deleted
// (end) and the session has read another command before its BYE went
// out: imapserver runs that command whatever CommandStart does, and the
// account's name may already be someone else's. So the session lets go
// of its login and forgets the name first, and the command finds no
// mailbox and no message, and changes nothing, of whoever has it now;
// the BYE goes out and the connection closes, so its answer reaches no
// one.
func (sess *session) endDeleted() {
	if sess.acct == "" {
		return
	}
	sess.bye(byeAccountDeleted)
	sess.srv.limits.releaseSession(sess.acct, sess.ip)
	sess.srv.sessions.remove(sess)
	sess.acct, sess.password = "", ""
}

// byeAll sends every logged-in session a BYE with text and closes its
// connection, all at once, and returns when each is done (each bounded
// by byeWait). A connection not logged in yet is closed without one by
// imapserver.
func (a *accountSessions) byeAll(text string) {
	var wg sync.WaitGroup
	for _, sess := range a.all() {
		if sess.conn == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess.bye(text)
		}()
	}
	wg.Wait()
}
