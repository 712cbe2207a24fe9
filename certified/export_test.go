package certified

import (
	"certmail/mailbox"
	"certmail/receipts"
)

// PostUnsalted posts an item as certmail did before commitments were
// salted (an unsalted H(L,M), no salt held), so that tests can show such
// items, still pending at an upgrade, settle and verify.
func (s *Service) PostUnsalted(tx *mailbox.Tx, req PostRequest) (*Item, error) {
	return s.post(tx, req, receipts.CommitmentUnsalted)
}
