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
// "expunging while message is already expunged").
//
// So do FETCH, SEARCH, SORT and THREAD, which answer from this node's
// index: a FETCH FLAGS right after a STORE through another node was
// answered OK showed the old flags in 144 of 200 tries (python imaplib;
// TestReadsSeeOtherNodesFlags: 125), and a client whose connections land
// on different nodes (Thunderbird's several) shows a user flags that
// are no longer so. Measured on two nodes (that test, a loaded machine):
// waiting only for a change notice the node had received and not yet
// applied, which costs nothing when none is pending, still left 86 to
// 100 of 200 stale: the notice reaches the other node after the client's
// next command in most tries, as both travel the same few loopback hops.
// A catch-up left none, for one more transaction a command (~0.2 to 0.4
// ms on this machine; commands arriving together share it) and nothing
// on Badger or a store that follows no one. STORE, COPY and MOVE are
// not caught up here: a write brings the mailboxes it changes up to date
// in its own transaction first (mailbox's tx.catchUp), so its answer is
// already current (the test's STORE rounds: none stale before), and a
// COPY reads the messages it copies from the database. Other commands
// (APPEND, CREATE, ...) go on at once and report another node's changes
// with their next poll.

var _ imapserver.SessionCommandStarter = (*session)(nil)

// CommandStart runs before each command (the go-imap patch calls it).
func (sess *session) CommandStart(name string) {
	if sess.deleted.Load() {
		sess.endDeleted() // accounts.go
		return
	}
	switch name {
	case "NOOP", "CHECK", "IDLE", "SELECT", "EXAMINE", "STATUS", "LIST", "EXPUNGE", "UID EXPUNGE",
		"FETCH", "UID FETCH", "SEARCH", "UID SEARCH", "SORT", "UID SORT", "THREAD", "UID THREAD":
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
