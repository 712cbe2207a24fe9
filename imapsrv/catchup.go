package imapsrv

import (
	"github.com/emersion/go-imap/v2/imapserver"
)

// Several nodes on one database (issue 13): each node's view of the
// mailboxes follows the others' commits a moment after they return
// (mailbox/follow.go). The commands whose purpose is to learn a
// mailbox's state are answered after this node has caught up with every
// commit that returned before they began (mailbox.Store.CatchUp), so that
// a session sees what a session on another node was already told was
// done: NOOP and CHECK (RFC 3501 6.1.2, 6.4.1: the poll for updates),
// IDLE (its first poll), SELECT and EXAMINE (the counts and flags they
// report), STATUS, LIST (mailboxes created, renamed or deleted through
// another node; LIST-STATUS), and EXPUNGE (RFC 3501 6.4.3: it reports
// the messages gone, those another session expunged included; imaptest's
// "expunging while message is already expunged"). Other commands go on at once and
// report another node's changes with their next poll: a wait on each
// FETCH or STORE would cost a read of the change journal each, and the
// client is not asking for news there. On a store no other process
// shares CatchUp returns at once.

var _ imapserver.SessionCommandStarter = (*session)(nil)

// CommandStart runs before each command (the go-imap patch calls it).
func (sess *session) CommandStart(name string) {
	switch name {
	case "NOOP", "CHECK", "IDLE", "SELECT", "EXAMINE", "STATUS", "LIST", "EXPUNGE", "UID EXPUNGE":
	default:
		return
	}
	if sess.acct == "" {
		return // not logged in: nothing of a mailbox to report
	}
	if err := sess.srv.store.CatchUp(); err != nil {
		// The command goes on with what this node has: a command that
		// needs the store fails on its own if the database is away.
		sess.log.Debug("catching up with other nodes' changes", "command", name, "err", err)
	}
}
