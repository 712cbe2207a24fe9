package imapsrv

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/buildinfo"
)

// ID (RFC 2971): the client says what it is, the server answers what it
// is. Valid before and after login (section 3.1).

var _ imapserver.SessionID = (*session)(nil)

// maxIDLogValue bounds what of a client's name or version reaches the log
// (RFC 2971 allows 1024 octets).
const maxIDLogValue = 128

// serverID is the server's answer: its name, and the version and VCS
// revision of the build. RFC 2971 section 3.3 lists "name" and "version";
// "revision" is outside its list, which section 3.3 allows (Dovecot sends
// one too).
func serverID(bi buildinfo.Info) *imap.IDData {
	return &imap.IDData{
		Name:    "certmail",
		Version: bi.Version,
		Other:   map[string]string{"revision": bi.ShortRevision()},
	}
}

func (sess *session) ID(client *imap.IDData) (*imap.IDData, error) {
	name, version := "", ""
	if client != nil {
		name, version = clip(client.Name, maxIDLogValue), clip(client.Version, maxIDLogValue)
	}
	// The session's logger carries the client from now on: the login
	// line and every later line of this session name it. A second ID
	// replaces the first (RFC 2971 section 3.1 lets a client send more
	// than one; the server is told the same thing or a correction).
	sess.log = sess.srv.log.With("client", name, "client_version", version)
	sess.log.Info("imap client id", "remote", sess.remote(), "user", sess.acct)
	return sess.srv.id, nil
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
