package imapsrv

import (
	"fmt"
	"strconv"

	"github.com/emersion/go-imap/v2"

	"certmail/mailbox"
)

// RFC 8474 object identifiers, derived from what the store already keeps
// rather than stored beside it, so that no write path changes:
//
//   - MAILBOXID is the mailbox's ID with its UIDVALIDITY. A mailbox's ID
//     survives RENAME (the mboxid/ record names it) and is never reused
//     in an account, not even after the account is deleted and made
//     again (acctgone/ keeps the next ID), so a mailbox deleted and
//     created again under its name gets another MAILBOXID (4.1).
//   - EMAILID is the ID of the message's blob. COPY and MOVE share the
//     blob, so the copy keeps its EMAILID (5.1: MOVE MUST, COPY SHOULD);
//     an APPEND of the same bytes is another blob and another EMAILID.
//     A certified stub is a blob of its own and the held M another, made
//     apart: the stub's EMAILID is never M's, and SEARCH EMAILID with M's
//     finds nothing until M is released into the mailbox.
//   - THREADID is NIL: certmail does not yet give messages a stable
//     thread (5.2 lets a server answer NIL), and SEARCH THREADID finds
//     nothing.
//
// Blob IDs are a store-wide counter, so EMAILIDs are guessable and tell
// roughly how many messages the server has stored; they name no content
// (section 9 asks only that they not be derived from it).

// MailboxObjectID is the RFC 8474 MAILBOXID of the mailbox with id and
// uidValidity.
func MailboxObjectID(id, uidValidity uint32) string {
	return fmt.Sprintf("F%08x%08x", id, uidValidity)
}

// EmailObjectID is the RFC 8474 EMAILID of the messages stored as blob.
func EmailObjectID(blob uint64) string {
	return "M" + strconv.FormatUint(blob, 16)
}

// CreateMailboxID is CREATE answering the new mailbox's MAILBOXID (RFC
// 8474 4.1: OK [MAILBOXID (id)]).
func (sess *session) CreateMailboxID(name string, options *imap.CreateOptions) (string, error) {
	mb, err := sess.create(name, options)
	if err != nil {
		return "", err
	}
	return MailboxObjectID(mb.ID, mb.UIDValidity), nil
}

// matchObjectIDs is SEARCH EMAILID and THREADID (RFC 8474 6) on m.
func matchObjectIDs(m *mailbox.Message, c *imap.SearchCriteria) bool {
	if len(c.EmailID) > 0 {
		id := EmailObjectID(m.Blob)
		for _, want := range c.EmailID {
			if want != id {
				return false
			}
		}
	}
	// No message has a THREADID (NIL), so none matches one.
	return len(c.ThreadID) == 0
}
