package interop

import (
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestNeomuttResync: neomutt keeps an offline copy of a certmail INBOX and
// resyncs it with QRESYNC after flag changes, a new message, expunges and
// a certified release (the stub acknowledged by UID MOVE into Acknowledge,
// M released into INBOX) made by another session; its view equals the
// server's each time (issue 12; RFC 7162 sections 3.2.5-3.2.6, 3.2.10).
func TestNeomuttResync(t *testing.T) {
	requireTool(t, "swaks")
	s := startServer(t)
	s.addUser("nm", "nm-pw")
	tg := resyncTarget{imap: s.imap, user: "nm", pass: "nm-pw",
		deliver: func(t *testing.T, subject string) {
			s.deliverSwaks("nm@example.org", subject, "body of "+subject)
		},
		hold: func(t *testing.T) {
			if out, err := s.lmtpSend(t, "nm@example.org", certifiedMessage("Certified-Delivery: deadline=2h\r\n", "held body for nm")); err != nil {
				t.Fatalf("certified delivery: %v\n%s", err, out)
			}
		},
		release: func(t *testing.T, c *imapclient.Client) {
			data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Certified-Label", Value: ""}}}, nil).Wait()
			if err != nil || len(data.AllUIDs()) != 1 {
				t.Fatalf("the stub: %v %v", data, err)
			}
			if _, err := c.Move(imap.UIDSetNum(data.AllUIDs()[0]), "Acknowledge").Wait(); err != nil {
				t.Fatalf("acknowledging the stub: %v", err)
			}
		},
	}
	neomuttResync(t, tg)
}
