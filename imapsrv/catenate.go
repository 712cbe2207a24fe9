package imapsrv

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// catenate builds a CATENATE message (RFC 4469); not offered yet.
func (sess *session) catenate(parts []imapserver.CatenatePart) ([]byte, bool, error) {
	return nil, false, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "CATENATE is not supported"}
}
