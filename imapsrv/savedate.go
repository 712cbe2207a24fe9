package imapsrv

import (
	"github.com/emersion/go-imap/v2"

	"certmail/mailbox"
)

// RFC 8514 SAVEDATE: the date a message was saved to its mailbox, kept
// in its record (mailbox.Message.Saved) by every APPEND, delivery, COPY
// and MOVE. Records from before it was kept answer their internal date
// (mailbox.Message.SaveDate), so every mailbox supports save dates and
// SAVEDATESUPPORTED matches all its messages (4.2); FETCH SAVEDATE is
// never NIL.

// matchSaveDate is SEARCH SAVEDSINCE, SAVEDBEFORE, SAVEDON and
// SAVEDATESUPPORTED (RFC 8514 4.2) on m. Like SINCE and BEFORE, only
// the date counts; the save date's is taken in UTC.
func matchSaveDate(m *mailbox.Message, c *imap.SearchCriteria) bool {
	if c.SavedSince.IsZero() && c.SavedBefore.IsZero() {
		return true
	}
	date := timeDate(m.SaveDate())
	if !c.SavedSince.IsZero() && date.Before(timeDate(c.SavedSince)) {
		return false
	}
	return c.SavedBefore.IsZero() || date.Before(timeDate(c.SavedBefore))
}
