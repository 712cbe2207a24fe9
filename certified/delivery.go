package certified

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"

	"certmail/delivery"
	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

var _ delivery.Certifier = (*Service)(nil)

// Check refuses, before anything is stored, a message whose
// Certified-Delivery header is malformed or unclear (LMTP 550 5.6.0; see
// FindRequest).
func (s *Service) Check(raw []byte, sender, account string) (bool, error) {
	_, ok, err := s.CertifiedSpec(raw, sender, account)
	return ok, err
}

// CheckAppend refuses an IMAP APPEND (to any mailbox but Acknowledge and
// Refuse) of a message with a Certified-Delivery field that some reader
// may show and certmail cannot read, as delivery does. A readable request
// is stored as it is: APPEND delivers to nobody, and a client saving the
// sent copy of a certified message does exactly that.
func (s *Service) CheckAppend(acct, dest string, raw []byte) error {
	if _, _, err := FindRequest(raw); err != nil {
		return refused("%v", err)
	}
	return nil
}

// DeliverCertified posts a delivered message as a certified item when its
// header or an operator rule says so.
func (s *Service) DeliverCertified(tx *mailbox.Tx, item delivery.Item) (bool, error) {
	spec, ok, err := s.CertifiedSpec(item.Raw, item.Sender, item.Account)
	if err != nil || !ok {
		return false, err
	}
	sender, auth := item.Sender, item.SenderAuth
	if sender == "" {
		// Without an envelope sender (`certmail deliver`), the evidence
		// names the From address; nothing vouches for it, so it gets no
		// notice by mail (Item.MailsNotices).
		sender, auth = fromAddress(item.Raw), ""
	}
	it, err := s.Post(tx, PostRequest{Raw: item.Raw, Blob: item.Blob, Sender: sender, SenderAuth: auth, Recipient: item.Account, Spec: spec})
	if err != nil {
		return false, err
	}
	// Said once the commit stands: a transaction run again after a
	// conflict with another node would say it twice.
	tx.OnCommit(func() {
		s.lg.Info("certified item posted", "label", it.Label, "recipient", it.Recipient, "deadline", it.Deadline)
	})
	return true, nil
}

// GatewayKeyFile is where the gateway's signing key lives in the data
// directory.
const GatewayKeyFile = "gateway.key"

// OpenLog loads (or creates) the gateway key in dataDir and returns the
// evidence log that signs with it under the gateway name.
func OpenLog(dataDir, gateway string) (*evidence.Log, ed25519.PrivateKey, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating data directory: %w", err)
	}
	key, err := receipts.LoadOrCreateGatewayKey(filepath.Join(dataDir, GatewayKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("gateway key: %w", err)
	}
	signer, err := evidence.NewSigner(gateway, key)
	if err != nil {
		return nil, nil, err
	}
	lg, err := evidence.NewLog(signer, LogOrigin(gateway))
	if err != nil {
		return nil, nil, err
	}
	return lg, key, nil
}
