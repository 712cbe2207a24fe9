package imapsrv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"

	"certmail/authguard"
	"certmail/metrics"
)

// LOGIN (RFC 9051 section 6.2.3) and AUTHENTICATE PLAIN (section 6.2.2,
// RFC 4616). Every password goes through the server's authguard.Guard,
// which counts failures per account and per address for every protocol.

func (sess *session) attempt(name string) authguard.Attempt {
	return authguard.Attempt{Proto: "imap", Remote: sess.remote(), Name: name}
}

func (sess *session) Login(username, password string) error {
	// A locked account or address is refused by the guard without its
	// password being looked at, with the same NO [AUTHENTICATIONFAILED]
	// whether the account exists or not.
	ended := sess.srv.sessions.endedCount()
	acct, err := sess.srv.auth.Authenticate(context.Background(), sess.attempt(username), password)
	if err != nil {
		return authError(err)
	}
	lim := sess.srv.limits
	if !lim.acquireSession(acct, sess.ip) {
		sess.log.Warn("login refused: too many sessions", "user", acct, "remote", sess.remote(), "limit", lim.lim.MaxSessionsPerUser)
		sess.srv.opts.Metrics.Login("imap", metrics.LoginLimit)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: fmt.Sprintf("too many sessions for %s (limit %d): log out of another first", acct, lim.lim.MaxSessionsPerUser)}
	}
	sess.acct = acct
	if sess.srv.afterPassword != nil {
		sess.srv.afterPassword(acct)
	}
	if sess.srv.sessions.addSince(sess, ended) {
		// An account was deleted while the password was checked: if it
		// was this one, its sessions were logged out before this one
		// was there to be, and the name may be someone else's next.
		if ok, err := sess.srv.store.AccountExists(acct); err != nil || !ok {
			sess.srv.sessions.remove(sess)
			lim.releaseSession(acct, sess.ip)
			sess.acct = ""
			sess.log.Info("login refused: account deleted while logging in", "user", acct, "remote", sess.remote(), "err", err)
			return imapserver.ErrAuthFailed
		}
	}
	if sess.srv.opts.Hooks != nil {
		sess.password = password
	}
	sess.logLogin()
	return nil
}

// authError is the answer to a refused login: AUTHENTICATIONFAILED (RFC
// 5530) for a wrong password, an unknown account and a lockout alike,
// the lockout saying how long it lasts.
func authError(err error) error {
	var ge *authguard.Error
	if errors.As(err, &ge) && ge.RetryIn > 0 {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: ge.Error()}
	}
	return imapserver.ErrAuthFailed
}

func (sess *session) AuthenticateMechanisms() []string { return []string{sasl.Plain} }

func (sess *session) Authenticate(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
	}
	return &plainServer{sess: sess}, nil
}

// AuthenticateMalformed counts an exchange that go-imap refused before
// the mechanism saw it (a response that is not base64, a line too long)
// as a failed login, and keeps go-imap's BAD: RFC 9051 section 6.2.2
// requires it for a response that is not valid base64.
func (sess *session) AuthenticateMalformed(mech string, err error) error {
	sess.srv.auth.Fail(context.Background(), sess.attempt(""), "malformed AUTHENTICATE "+mech+": "+err.Error())
	return err
}

// plainServer is the server side of SASL PLAIN.
type plainServer struct {
	sess *session
	done bool
}

func (p *plainServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	if p.done {
		// go-imap stops at done; nothing else calls twice.
		return nil, false, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "PLAIN takes one response"}
	}
	if resp == nil {
		// No initial response: an empty challenge ("+ ") asks for it.
		return []byte{}, false, nil
	}
	p.done = true
	sess := p.sess
	authzid, authcid, passwd, err := parsePlain(resp)
	if err != nil {
		// Malformed is a failed login too (it may be a guesser's
		// tool), answered like a wrong password.
		ferr := sess.srv.auth.Fail(context.Background(), sess.attempt(authcid), "malformed AUTHENTICATE PLAIN: "+err.Error())
		if aerr := authError(ferr); aerr != imapserver.ErrAuthFailed {
			return nil, true, aerr
		}
		return nil, true, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed,
			Text: "invalid PLAIN response: " + err.Error()}
	}
	if authzid != "" && !sess.sameAccount(authzid, authcid) {
		// Acting as another user (RFC 4616 section 2) is not offered.
		ferr := sess.srv.auth.Fail(context.Background(), sess.attempt(authcid), "AUTHENTICATE PLAIN for another identity")
		if aerr := authError(ferr); aerr != imapserver.ErrAuthFailed {
			return nil, true, aerr
		}
		return nil, true, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed,
			Text: "SASL authorization identity not supported"}
	}
	return nil, true, sess.Login(authcid, passwd)
}

// sameAccount reports whether two names are one account, by the guard's
// rule (a client may send its address as both identities).
func (sess *session) sameAccount(a, b string) bool {
	na, errA := sess.srv.auth.Account(a)
	nb, errB := sess.srv.auth.Account(b)
	return errA == nil && errB == nil && na == nb
}

// maxPlainField bounds each field of a PLAIN message. RFC 4616 section 2
// requires at least 255 octets; account names are far shorter, and a
// passphrase of a thousand bytes is still accepted.
const maxPlainField = 1024

// parsePlain splits a PLAIN message (RFC 4616 section 2):
//
//	message = [authzid] UTF8NUL authcid UTF8NUL passwd
//
// where authcid and passwd are not empty, and no field holds a NUL or
// anything but UTF-8. On error, authcid is returned when the message got
// that far, so that the failure is counted against the account too.
func parsePlain(msg []byte) (authzid, authcid, passwd string, err error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) >= 2 && len(parts[1]) <= maxPlainField {
		authcid = string(parts[1])
	}
	switch {
	case len(parts) != 3:
		return "", authcid, "", fmt.Errorf("want authzid NUL authcid NUL passwd, got %d NUL-separated fields", len(parts))
	case len(parts[0]) > maxPlainField || len(parts[1]) > maxPlainField || len(parts[2]) > maxPlainField:
		return "", authcid, "", fmt.Errorf("a field is over %d bytes", maxPlainField)
	case len(parts[1]) == 0:
		return "", "", "", errors.New("empty authentication identity")
	case len(parts[2]) == 0:
		return "", authcid, "", errors.New("empty password")
	case !utf8.Valid(parts[0]) || !utf8.Valid(parts[1]) || !utf8.Valid(parts[2]):
		return "", authcid, "", errors.New("not UTF-8")
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), nil
}
