package imapsrv

import (
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"

	"certmail/mailbox"
)

// Hooks let another package take over COPY, MOVE and APPEND into some
// mailboxes: certified mail turns a stub moved into Acknowledge into a
// signed certificate of delivery. The hook runs its own store
// transactions, passing source to Store.UpdateFrom so that the session's
// tracker recognises its own changes.
type Hooks interface {
	// Handles reports whether dest is one of the hook's mailboxes.
	Handles(acct, dest string) bool
	// Consign handles COPY or MOVE of msgs into dest. Whatever it does
	// to the source messages reaches the session through the tracker.
	Consign(acct, password string, source any, dest string, msgs []*mailbox.Message) (*mailbox.CopyResult, error)
	// AppendTo handles APPEND of raw into dest.
	AppendTo(acct, password string, source any, dest string, raw []byte, opts mailbox.AppendOptions) (*mailbox.AppendResult, error)
	// CheckAppend vets APPEND of raw into any other mailbox before it is
	// stored; an error wrapping mailbox.ErrRefused answers NO with its
	// reason.
	CheckAppend(acct, dest string, raw []byte) error
}

// hookError shows a hook's refusal to the client as NO with its reason.
func hookError(err error) error {
	if errors.Is(err, mailbox.ErrRefused) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: responseText(err.Error())}
	}
	return destError(err)
}

func (sess *session) hooked(dest string) bool {
	h := sess.srv.opts.Hooks
	return h != nil && h.Handles(sess.acct, dest)
}

func targetMessages(ts []target) []*mailbox.Message {
	out := make([]*mailbox.Message, len(ts))
	for i, t := range ts {
		out[i] = t.msg
	}
	return out
}

// responseText makes an error message safe for a status response: one
// line, no control characters (a CR or LF would end the response early and
// desynchronise the client), and of reasonable length.
func responseText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
