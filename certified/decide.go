package certified

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"certmail/mailbox"
	"certmail/notifier"
	"certmail/receipts"
	"certmail/receipts/evidence"

	"certmail/kv"

	"certmail/kv/keyspace"
)

// LabelHeader and HashHeader are the stub headers that name the item.
const (
	LabelHeader = "Certified-Label"
	HashHeader  = "Certified-Hash"
)

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", mailbox.ErrRefused, fmt.Sprintf(format, args...))
}

// decisionFor maps the target mailbox to the decision it stands for.
func decisionFor(dest string) (receipts.Decision, bool) {
	switch {
	case strings.EqualFold(dest, AckMailbox):
		return receipts.DecisionCOD, true
	case strings.EqualFold(dest, RefuseMailbox):
		return receipts.DecisionRefusal, true
	}
	return "", false
}

// Handles reports whether COPY, MOVE and APPEND into dest are the
// service's: the Acknowledge and Refuse mailboxes.
func (s *Service) Handles(acct, dest string) bool {
	_, ok := decisionFor(dest)
	return ok
}

// Consign takes the decision a recipient expresses by copying or moving
// stubs into Acknowledge or Refuse: for each stub, the gateway signs the
// COD (or refusal) with the recipient's custody key, unsealed with the
// session's password, and settles the item. The stubs are withdrawn from
// every mailbox; a receipt lands in dest.
func (s *Service) Consign(acct, password string, source any, dest string, msgs []*mailbox.Message) (*mailbox.CopyResult, error) {
	decision, ok := decisionFor(dest)
	if !ok {
		return nil, refused("%s is not a certified-mail mailbox", dest)
	}
	type pending struct {
		uid   uint32
		label string
	}
	var todo []pending
	for _, m := range msgs {
		raw, err := s.store.Raw(m.Blob)
		if err != nil {
			return nil, fmt.Errorf("reading message %d: %w", m.UID, err)
		}
		label, ok := headerValue(raw, LabelHeader)
		if !ok {
			return nil, refused("message UID %d is not a certified-item stub; only stubs can go to %s", m.UID, dest)
		}
		label = strings.TrimSpace(label)
		it, err := s.item(label)
		if err != nil {
			return nil, refused("message UID %d names unknown item %s", m.UID, label)
		}
		if it.StubBlob != m.Blob || !it.IsHolder(acct) {
			return nil, refused("message UID %d is not the gateway's stub of %s for %s", m.UID, label, acct)
		}
		if !it.Pending() {
			return nil, refused("item %s is already %s", label, it.State)
		}
		todo = append(todo, pending{m.UID, label})
	}
	if len(todo) == 0 {
		return &mailbox.CopyResult{}, nil
	}
	priv, err := s.custodyKey(acct, password)
	if err != nil {
		return nil, err
	}
	res := &mailbox.CopyResult{}
	for _, p := range todo {
		it, err := s.item(p.label)
		if err != nil {
			return nil, err
		}
		req := receipts.NewCODRequest(s.opts.Gateway, it.Label, it.HashBytes(), acct, time.Time{})
		cod, err := receipts.SignCOD(priv, req.Claims(decision, receipts.CustodyGatewayHeld, s.now()))
		if err != nil {
			return nil, fmt.Errorf("signing the COD for %s: %w", it.Label, err)
		}
		var receipt *mailbox.AppendResult
		err = s.store.UpdateFrom(source, func(tx *mailbox.Tx) error {
			var err error
			receipt, err = s.settle(tx, acct, cod, dest, nil)
			return err
		})
		if err != nil {
			s.recordAttempt(it.Label, acct, err)
			return nil, err
		}
		res.UIDValidity = receipt.UIDValidity
		res.SourceUIDs = append(res.SourceUIDs, p.uid)
		res.DestUIDs = append(res.DestUIDs, receipt.UID)
	}
	if err := s.store.Sync(); err != nil {
		return nil, fmt.Errorf("syncing store: %w", err)
	}
	return res, nil
}

// AppendTo takes a COD or refusal that the recipient signed with a key of
// their own and handed in by APPEND: the message must hold one compact JWS
// (bare, or as a MIME part). The appended message is kept in dest as the
// receipt.
func (s *Service) AppendTo(acct, password string, source any, dest string, raw []byte, opts mailbox.AppendOptions) (*mailbox.AppendResult, error) {
	decision, ok := decisionFor(dest)
	if !ok {
		return nil, refused("%s is not a certified-mail mailbox", dest)
	}
	cod, err := receipts.ExtractCOD(raw)
	if err != nil {
		return nil, refused("no COD in the appended message: %v", err)
	}
	claims, _, err := receipts.ParseCOD(cod)
	if err != nil {
		return nil, refused("%v", err)
	}
	if claims.Type != decision {
		return nil, refused("a %s cannot be appended to %s", claims.Type, dest)
	}
	var res *mailbox.AppendResult
	err = s.store.UpdateFrom(source, func(tx *mailbox.Tx) error {
		var err error
		res, err = s.settle(tx, acct, cod, dest, &receiptMessage{raw: raw, opts: opts})
		return err
	})
	if err != nil {
		s.recordAttempt(claims.Label, acct, err)
		return nil, err
	}
	if err := s.store.Sync(); err != nil {
		return nil, fmt.Errorf("syncing store: %w", err)
	}
	return res, nil
}

type receiptMessage struct {
	raw  []byte
	opts mailbox.AppendOptions
}

// SubmitCOD settles an item with a COD or refusal handed in outside IMAP
// (the HTTP API): no receipt message is stored.
func (s *Service) SubmitCOD(acct, cod string) error {
	err := s.store.Update(func(tx *mailbox.Tx) error {
		_, err := s.settle(tx, acct, cod, "", nil)
		return err
	})
	if err != nil {
		label := ""
		if c, _, perr := receipts.ParseCOD(cod); perr == nil {
			label = c.Label
		}
		s.recordAttempt(label, acct, err)
	}
	return err
}

// Attempt is a COD or refusal that was handed in and refused: kept so that
// an operator (or a dispute) can see who tried what, and why it failed.
type Attempt struct {
	Time    time.Time `json:"time"`
	Label   string    `json:"label"`
	Account string    `json:"account"`
	Reason  string    `json:"reason"`
}

// recordAttempt records a refused COD. The item itself stays as it was.
func (s *Service) recordAttempt(label, acct string, cause error) {
	if !errors.Is(cause, mailbox.ErrRefused) {
		return
	}
	a := Attempt{Time: s.now(), Label: label, Account: acct, Reason: cause.Error()}
	s.lg.Warn("refused a COD", "label", label, "account", acct, "reason", cause)
	b, err := json.Marshal(a)
	if err != nil {
		return
	}
	var nonce [4]byte
	rand.Read(nonce[:])
	// Time first for order; the nonce keeps two attempts in the same
	// instant apart.
	key := []byte(fmt.Sprintf(keyspace.Certified+"attempt/%s/%020d-%x", label, a.Time.UnixNano(), nonce))
	if err := s.store.Update(func(tx *mailbox.Tx) error { return tx.Set(key, b) }); err != nil {
		s.lg.Error("recording a refused COD", "label", label, "err", err)
	}
}

// Attempts lists the refused CODs handed in for an item.
func Attempts(kv kv.Records, label string) ([]Attempt, error) {
	var out []Attempt
	err := kv.Scan([]byte(keyspace.Certified+"attempt/"+label+"/"), func(_, v []byte) error {
		var a Attempt
		if err := json.Unmarshal(v, &a); err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// settle verifies a COD or refusal signed by acct and applies it: one
// transaction records the evidence, withdraws every stub, releases M (for
// a COD), stores the receipt in dest, cancels the timers and tells the
// sender.
func (s *Service) settle(tx *mailbox.Tx, acct, cod, dest string, receipt *receiptMessage) (*mailbox.AppendResult, error) {
	claims, kid, err := receipts.ParseCOD(cod)
	if err != nil {
		return nil, refused("%v", err)
	}
	it, err := GetItem(tx, claims.Label)
	if err != nil {
		return nil, refused("the COD names unknown item %s", claims.Label)
	}
	if !it.IsHolder(acct) {
		return nil, refused("%s was not given item %s", acct, it.Label)
	}
	if !it.Pending() {
		return nil, refused("item %s is already %s", it.Label, it.State)
	}
	if claims.Recipient != acct {
		return nil, refused("the COD is signed for %q, not for %s", claims.Recipient, acct)
	}
	key, err := lookupKey(tx, acct, kid)
	if err != nil {
		return nil, refused("%v (register it with `certmail key register`)", err)
	}
	if !key.Retired.IsZero() {
		return nil, refused("key %s of %s was retired on %s", kid, acct, key.Retired.Format(time.RFC3339))
	}
	if claims.Custody != key.Custody {
		return nil, refused("the COD claims custody %s but key %s is %s", claims.Custody, kid, key.Custody)
	}
	if _, err := receipts.VerifyCOD(cod, ed25519.PublicKey(key.Public)); err != nil {
		return nil, refused("%v", err)
	}
	hash := it.HashBytes()
	if err := claims.Check(s.opts.Gateway, it.Label, hash); err != nil {
		return nil, refused("%v", err)
	}
	// A COD dated before the item existed or after its deadline would be
	// recorded, and shown to the sender, as a false statement of when B
	// decided.
	if err := receipts.CheckSignedAt(claims.SignedAt, it.Posted, it.Deadline, s.now()); err != nil {
		return nil, refused("%v", err)
	}

	now := s.now()
	var records []evidence.Entry
	if claims.Type == receipts.DecisionCOD {
		acc, err := s.log.Append(tx, evidence.NewConsignmentAcceptance(it.Label, hash, cod, acct, string(claims.Custody)))
		if err != nil {
			return nil, fmt.Errorf("recording the COD: %w", err)
		}
		// The ROD releases r with M, in the same transaction, so that B
		// (and A) can check M against the commitment B signed.
		rod, err := s.log.Append(tx, evidence.NewContentHandover(it.Label, hash, cod, acct, it.Salt))
		if err != nil {
			return nil, fmt.Errorf("recording the ROD: %w", err)
		}
		records = []evidence.Entry{acc, rod}
	} else {
		rej, err := s.log.Append(tx, evidence.NewConsignmentRejection(it.Label, hash, cod, acct, string(claims.Custody), ""))
		if err != nil {
			return nil, fmt.Errorf("recording the refusal: %w", err)
		}
		records = []evidence.Entry{rej}
	}
	if err := s.withdrawStubs(tx, it); err != nil {
		return nil, err
	}
	if claims.Type == receipts.DecisionCOD {
		// Counted while held: the release is not checked again.
		if _, err := tx.AppendBlob(acct, "INBOX", it.Blob, mailbox.AppendOptions{QuotaExempt: true}); err != nil {
			return nil, fmt.Errorf("releasing %s: %w", it.Label, err)
		}
		it.State = StateReleased
	} else {
		it.State = StateRefused
	}
	var res *mailbox.AppendResult
	if dest != "" {
		if receipt == nil {
			raw, err := s.receipt(it, acct, claims.Type, cod)
			if err != nil {
				return nil, err
			}
			receipt = &receiptMessage{raw: raw, opts: mailbox.AppendOptions{Flags: []string{mailbox.FlagSeen}}}
		}
		// A decision is never refused for the quota.
		receipt.opts.QuotaExempt = true
		if _, err := tx.Mailbox(acct, dest); errors.Is(err, mailbox.ErrNoMailbox) {
			// Accounts made before certified mail lack the mailbox.
			if _, err := tx.CreateMailbox(acct, mailbox.NewMailbox{Name: dest, Subscribed: true}); err != nil {
				return nil, err
			}
		}
		if res, err = tx.Append(acct, dest, receipt.raw, receipt.opts); err != nil {
			return nil, fmt.Errorf("storing the receipt: %w", err)
		}
	}
	if err := s.finish(tx, it); err != nil {
		return nil, err
	}
	it.Decided, it.Signer, it.Custody = now, acct, string(claims.Custody)
	if err := putItem(tx, it); err != nil {
		return nil, err
	}
	if claims.Type == receipts.DecisionCOD {
		s.notifySender(tx, it, "delivered", "Report of delivery for "+it.Label,
			fmt.Sprintf("Certified item %s was acknowledged by %s at %s and handed over.\n\nAttached: the gateway's records of the certificate of delivery (ConsignmentAcceptance) and of the report of delivery (ContentHandover), and the recipient's certificate of delivery itself (cod.jws, signed by %s with custody %s).\n",
				it.Label, acct, now.Format(time.RFC3339), acct, claims.Custody),
			records,
			notifier.Attachment{Name: "cod.jws", ContentType: "application/jose", Data: []byte(cod)})
	} else {
		s.notifySender(tx, it, "refused", "Certified item "+it.Label+" was refused",
			fmt.Sprintf("Certified item %s was refused by %s at %s. The content was not handed over.\n\nAttached: the gateway's record of the refusal (ConsignmentRejection) and the signed refusal.\n",
				it.Label, acct, now.Format(time.RFC3339)),
			records,
			notifier.Attachment{Name: "refusal.jws", ContentType: "application/jose", Data: []byte(cod)})
	}
	// Said once the commit stands: a transaction run again after a
	// conflict with another node would say it twice.
	tx.OnCommit(func() {
		s.lg.Info("certified item settled", "label", it.Label, "state", it.State, "signer", acct, "custody", claims.Custody)
	})
	return res, nil
}

// withdrawStubs removes every copy of the item's stub, in every account.
func (s *Service) withdrawStubs(tx *mailbox.Tx, it *Item) error {
	refs, err := tx.MessagesByBlob(it.StubBlob)
	if err != nil {
		return err
	}
	for _, r := range refs {
		if err := tx.ExpungeRef(r); err != nil {
			return fmt.Errorf("withdrawing a stub of %s: %w", it.Label, err)
		}
	}
	return nil
}

// finish drops the item's holds on M and the stub and cancels its timers;
// the held M stops counting against the recipient's quota (released, it
// counts as the message in INBOX).
func (s *Service) finish(tx *mailbox.Tx, it *Item) error {
	if err := tx.AdjustUsage(it.Recipient, -it.HeldSize, 0); err != nil {
		return err
	}
	if err := tx.UnrefBlob(it.Blob); err != nil {
		return err
	}
	if err := tx.UnrefBlob(it.StubBlob); err != nil {
		return err
	}
	for _, kind := range []string{TimerExpiry, TimerForward} {
		if err := tx.CancelTimer(kind, it.Label); err != nil {
			return err
		}
	}
	return nil
}

// receipt is the message left in Acknowledge or Refuse: what was signed.
func (s *Service) receipt(it *Item, acct string, d receipts.Decision, cod string) ([]byte, error) {
	verb := "acknowledged"
	if d == receipts.DecisionRefusal {
		verb = "refused"
	}
	return notifier.BuildNotice(notifier.Notice{
		ID:      "cm-receipt-" + it.Label,
		To:      []string{acct},
		From:    s.opts.Postmaster,
		Subject: fmt.Sprintf("You %s certified item %s", verb, it.Label),
		Text: fmt.Sprintf("You %s certified item %s.\n%s = %s\n%sSigned with the key the gateway holds for you, opened with your password.\n\nThe signed %s is attached.\n",
			verb, it.Label, receipts.CommitmentName(it.Commitment()), it.Hash, releasedSalt(it, d), d),
		Attachments: []notifier.Attachment{{Name: string(d) + ".jws", ContentType: "application/jose", Data: []byte(cod)}},
	}, s.now())
}

// releasedSalt is the receipt's line that hands B the salt r released
// with M (none on a refusal, or for an unsalted item), and says how to
// check M with it (docs/verify.md).
func releasedSalt(it *Item, d receipts.Decision) string {
	if d != receipts.DecisionCOD || it.Salt == "" {
		return ""
	}
	return fmt.Sprintf("Salt r = %s\n(released with the message: H(L,r,M) is SHA-256 over len(L) as 4 bytes big-endian, L, len(r) as 4 bytes, r, and the message as delivered to your INBOX; see docs/verify.md)\n", it.Salt)
}

// custodyKey opens acct's gateway-held key. An account made before
// certified mail, or whose password was reset by hand, gets a new key
// sealed under the password it authenticated with.
func (s *Service) custodyKey(acct, password string) (ed25519.PrivateKey, error) {
	if password == "" {
		return nil, refused("this session has no password to open the signing key with (log in with a password)")
	}
	var priv ed25519.PrivateKey
	err := s.store.View(func(tx *mailbox.Tx) error {
		var err error
		priv, err = unsealCustody(tx, acct, password)
		return err
	})
	if err == nil {
		return priv, nil
	}
	s.lg.Info("provisioning a new custody key", "account", acct, "reason", err)
	if err := s.store.Update(func(tx *mailbox.Tx) error {
		// Not for an account deleted since the session logged in: its
		// name may already be somebody else's.
		if _, err := tx.Account(acct); err != nil {
			return err
		}
		return ChangePassword(tx, acct, "", password)
	}); err != nil {
		return nil, err
	}
	err = s.store.View(func(tx *mailbox.Tx) error {
		var err error
		priv, err = unsealCustody(tx, acct, password)
		return err
	})
	return priv, err
}

func (s *Service) item(label string) (*Item, error) {
	var it *Item
	err := s.store.View(func(tx *mailbox.Tx) error {
		var err error
		it, err = GetItem(tx, label)
		return err
	})
	return it, err
}

// Item returns an item's record.
func (s *Service) Item(label string) (*Item, error) { return s.item(label) }
