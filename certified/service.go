package certified

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/mail"
	"net/textproto"
	"path"
	"strings"
	"time"

	"certmail/addressing"
	"certmail/mailbox"
	"certmail/notifier"
	"certmail/receipts"
	"certmail/receipts/evidence"

	"certmail/kv"
)

// The mailboxes every account has for certified mail.
const (
	AckMailbox    = "Acknowledge"
	RefuseMailbox = "Refuse"
)

// Timer kinds this package schedules.
const (
	TimerExpiry = "cm-expiry"
)

var (
	ErrNoItem = errors.New("no such certified item")
)

// Notices is where notices to senders go (the notifier outbox), inside the
// transaction of the event they report.
type Notices interface {
	Enqueue(kv kv.Records, n notifier.Notice) error
}

// Rule makes mail certified by operator policy: a message whose recipient
// account and sender address match (path.Match patterns, lower-case; empty
// matches anything) is certified with the defaults even without a
// Certified-Delivery header.
type Rule struct {
	Recipient string
	Sender    string
}

// Options configure the Service.
type Options struct {
	Gateway    string // P, the gateway's name in evidence and CODs
	Postmaster string // From of stubs and notices
	// Addresses says which addresses are local accounts (an alternate,
	// a forward's target) and in which domain their addresses are
	// written; default: bare names and the Gateway's name. Originator-
	// specified alternates may be local accounts or in its alternate
	// domains.
	Addresses *addressing.Resolver
	IMAPAddr  string // shown in stubs for `certmail sign`
	// Defaults for what a Certified-Delivery header leaves out.
	DefaultDeadline time.Duration
	DefaultOnExpiry string
	DefaultReveal   string
	Rules           []Rule
	Notices         Notices
	// Webhooks are URLs (configured in the outbox) that get every event.
	Webhooks []string
	Logger   *slog.Logger
	Now      func() time.Time
}

// Service runs certified items over a store and an evidence log.
type Service struct {
	store *mailbox.Store
	log   *evidence.Log
	opts  Options
	lg    *slog.Logger
}

// New returns a Service.
func New(store *mailbox.Store, log *evidence.Log, opts Options) *Service {
	if opts.DefaultDeadline == 0 {
		opts.DefaultDeadline = 72 * time.Hour
	}
	if opts.DefaultOnExpiry == "" {
		opts.DefaultOnExpiry = OnExpiryNonDelivery
	}
	if opts.DefaultReveal == "" {
		opts.DefaultReveal = RevealSender
	}
	if opts.Gateway == "" {
		opts.Gateway = log.Signer().Gateway()
	}
	if opts.Addresses == nil {
		opts.Addresses = addressing.New(addressing.Options{Hostname: opts.Gateway})
	}
	if opts.Postmaster == "" {
		opts.Postmaster = "certmail <postmaster@" + opts.Gateway + ">"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{store: store, log: log, opts: opts, lg: opts.Logger}
	store.AddHooks(mailbox.Hooks{AccountDeleted: s.accountDeleted, BeforeAccountDeleted: s.accountDeleting})
	return s
}

// Log is the evidence log the service appends to.
func (s *Service) Log() *evidence.Log { return s.log }

// Store is the store the service runs on.
func (s *Service) Store() *mailbox.Store { return s.store }

func (s *Service) now() time.Time { return s.opts.Now().UTC() }

// Mailboxes are the extra mailboxes certified mail needs in every account.
func Mailboxes() []mailbox.NewMailbox {
	return []mailbox.NewMailbox{
		{Name: AckMailbox, Subscribed: true},
		{Name: RefuseMailbox, Subscribed: true},
	}
}

// PostRequest is an item to post.
type PostRequest struct {
	Raw    []byte
	Blob   uint64 // where the store already holds Raw; zero to store it
	Sender string // A's address, for notices; may be empty
	// SenderAuth says how Sender was authenticated: "api-token:NAME"
	// (one of the token's configured senders) or "lmtp-client:IP" (an
	// envelope sender from an LMTP client the operator trusts). Empty
	// when nothing vouches for Sender: then no notice is mailed to it
	// (see Item.MailsNotices).
	SenderAuth string
	Recipient  string // B's account
	Spec       Spec
	Submitter  string // API token name, if any
}

// resolveSpec fills in defaults.
func (s *Service) resolveSpec(spec Spec) Spec {
	if spec.Deadline.IsZero() {
		spec.Deadline = s.now().Add(s.opts.DefaultDeadline).Truncate(time.Second)
	}
	if spec.OnExpiry == "" {
		spec.OnExpiry = s.opts.DefaultOnExpiry
	}
	if spec.Reveal == "" {
		spec.Reveal = s.opts.DefaultReveal
	}
	return spec
}

// Post posts a certified item inside tx: M is held, in no mailbox; a stub
// goes to B's INBOX; the COP and the notification are recorded; the
// deadline timer is set; A is sent the COP.
func (s *Service) Post(tx *mailbox.Tx, req PostRequest) (*Item, error) {
	return s.post(tx, req, receipts.CommitmentSalted)
}

// post is Post with the commitment version: always CommitmentSalted, but
// for the tests that make an item as it was posted before salting, to
// show such items still settle and verify.
func (s *Service) post(tx *mailbox.Tx, req PostRequest, commitment int) (*Item, error) {
	spec := s.resolveSpec(req.Spec)
	label, err := receipts.NewLabel()
	if err != nil {
		return nil, err
	}
	// A fresh salt per item makes the commitment hiding: the stub shows
	// H(L,r,M), and without r nobody can test a guessed M against it.
	salt, err := receipts.NewSalt()
	if err != nil {
		return nil, err
	}
	hash, saltHex := receipts.SaltedItemHash(label, salt, req.Raw), salt.String()
	if commitment == receipts.CommitmentUnsalted {
		hash, saltHex = receipts.ItemHash(label, req.Raw), ""
	}
	blob := req.Blob
	if blob == 0 {
		if blob, err = tx.PutBlob(req.Raw); err != nil {
			return nil, err
		}
	} else if err := tx.RefBlob(blob); err != nil {
		return nil, err
	}
	from, subject := revealed(req.Raw, spec.Reveal)
	it := &Item{
		Label:      label,
		Hash:       receipts.FormatHash(hash),
		Salt:       saltHex,
		Sender:     req.Sender,
		SenderAuth: req.SenderAuth,
		Recipient:  req.Recipient,
		Deadline:   spec.Deadline,
		OnExpiry:   spec.OnExpiry,
		Reveal:     spec.Reveal,
		Holders:    []string{req.Recipient},
		State:      StateNotified,
		Blob:       blob,
		Posted:     s.now(),
		Submitter:  req.Submitter,
		From:       from,
		Subject:    subject,
	}
	for _, a := range spec.Alternates {
		if s.alternateAllowed(tx, a) {
			it.Alternates = append(it.Alternates, a)
		} else {
			s.lg.Info("originator alternate not allowed by policy", "label", label, "alternate", a)
		}
	}
	cop, err := s.log.Append(tx, evidence.NewSubmissionAcceptance(label, hash, commitment, req.Sender, req.Recipient, spec.Deadline))
	if err != nil {
		return nil, fmt.Errorf("recording the COP: %w", err)
	}
	// M counts against the recipient's quota while it is held (issue
	// 14), from now: the stub's append below is checked with it, so an
	// item that does not fit is refused (mailbox.ErrOverQuota).
	it.HeldSize = HeldQuotaCharge(int64(len(req.Raw)))
	if err := tx.AdjustUsage(req.Recipient, it.HeldSize, 0); err != nil {
		return nil, err
	}
	notified, err := s.deliverStub(tx, it, req.Recipient)
	if err != nil {
		return nil, err
	}
	if err := tx.ScheduleTimer(mailbox.Timer{Due: spec.Deadline, Kind: TimerExpiry, ID: label}); err != nil {
		return nil, err
	}
	if len(it.Alternates) > 0 {
		// The sender's alternates get the stub halfway to the deadline,
		// if nobody has answered by then.
		due := it.Posted.Add(spec.Deadline.Sub(it.Posted) / 2)
		if err := tx.ScheduleTimer(mailbox.Timer{Due: due, Kind: TimerForward, ID: label}); err != nil {
			return nil, err
		}
	}
	if err := tx.Set(stubKey(it.StubBlob), []byte(label)); err != nil {
		return nil, err
	}
	if err := tx.Set(messageKey(it.Blob), []byte(label)); err != nil {
		return nil, err
	}
	if err := putItem(tx, it); err != nil {
		return nil, err
	}
	s.notifySender(tx, it, "posted", "Certificate of posting for "+label,
		postedText(it),
		[]evidence.Entry{cop, notified})
	return it, nil
}

// HeldQuotaCharge is what a held M of size bytes counts against its
// recipient's quota: its size rounded up to a power of two, at least
// 64 KiB. The recipient reads its usage (GETQUOTA) and can probe it with
// APPENDs up to the limit; the exact size would tell it |M| before the
// COD, which nothing else it sees does (TestQuotaRevealsNotSizeOfM). A
// bucket tells it no more than the order of magnitude.
func HeldQuotaCharge(size int64) int64 {
	charge := int64(64 << 10)
	for charge < size {
		charge <<= 1
	}
	return charge
}

// postedText is the notice that goes to A with the COP. It tells A the
// salt r, which A needs to check the COP's H(L,r,M) against its own M,
// and which B learns only when M is released.
func postedText(it *Item) string {
	text := fmt.Sprintf("certmail accepted your certified item %s for %s.\n%s = %s\n", it.Label, it.Recipient, receipts.CommitmentName(it.Commitment()), it.Hash)
	if it.Salt != "" {
		text += "Salt r = " + it.Salt + "\n"
	}
	text += fmt.Sprintf("Deadline: %s\n\nThe certificate of posting (COP) is attached: a JWS signed by the gateway.\n", it.Deadline.Format(time.RFC3339))
	if it.Salt != "" {
		text += "H(L,r,M) is SHA-256 over the label's length (4 bytes, big-endian), the label, the salt's length (4 bytes), the salt r (32 bytes, hex above) and your message.\n" +
			"Keep r: the recipient learns it only with the message; with it you can check your message against the evidence even if the item is refused or expires (certmail verify --salt).\n"
	}
	return text
}

// deliverStub puts a stub of it in holder's INBOX and records the
// ConsignmentNotification. The first stub's blob is shared by every later
// one (forwards), so that withdrawing all copies is one lookup.
func (s *Service) deliverStub(tx *mailbox.Tx, it *Item, holder string) (evidence.Entry, error) {
	hash := it.HashBytes()
	if it.StubBlob == 0 {
		stub, err := notifier.BuildStub(notifier.StubInfo{
			Postmaster: s.opts.Postmaster,
			Gateway:    s.opts.Gateway,
			Label:      it.Label,
			Hash:       hash,
			Recipient:  s.opts.Addresses.AddressOf(it.Recipient),
			Deadline:   it.Deadline,
			From:       it.From,
			Subject:    it.Subject,
			IMAPAddr:   s.opts.IMAPAddr,
			IMAPUser:   it.Recipient,
			Request:    receipts.NewCODRequest(s.opts.Gateway, it.Label, hash, it.Recipient, it.Deadline),
		}, s.now())
		if err != nil {
			return evidence.Entry{}, fmt.Errorf("building the stub: %w", err)
		}
		if it.StubBlob, err = tx.PutBlob(stub); err != nil {
			return evidence.Entry{}, err
		}
	}
	// The recipient's stub is checked against its quota, with M counted
	// (Post); one forwarded to an alternate is not: the item is under
	// way, and a refusal there would leave it half forwarded.
	opts := mailbox.AppendOptions{QuotaExempt: holder != it.Recipient}
	if _, err := tx.AppendBlob(holder, "INBOX", it.StubBlob, opts); err != nil {
		return evidence.Entry{}, fmt.Errorf("delivering the stub to %s: %w", holder, err)
	}
	entry, err := s.log.Append(tx, evidence.NewConsignmentNotification(it.Label, hash, holder))
	if err != nil {
		return evidence.Entry{}, fmt.Errorf("recording the notification: %w", err)
	}
	return entry, nil
}

// revealed returns M's From and Subject as the reveal policy allows.
func revealed(raw []byte, reveal string) (from, subject string) {
	if reveal == RevealNone {
		return "", ""
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", ""
	}
	dec := mime.WordDecoder{}
	decode := func(v string) string {
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d
		}
		v = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, v)
		if len(v) > 200 {
			v = v[:200]
		}
		return strings.TrimSpace(v)
	}
	from = decode(msg.Header.Get("From"))
	if reveal == RevealSenderSubject {
		subject = decode(msg.Header.Get("Subject"))
	}
	return from, subject
}

// alternateAllowed says whether an originator-specified alternate may be
// used: an existing local account, or an address in one of the alternate
// domains the operator allows.
func (s *Service) alternateAllowed(tx *mailbox.Tx, addr string) bool {
	a, err := s.opts.Addresses.Resolve(tx, addr)
	if err != nil {
		return false
	}
	return a.Local() || s.opts.Addresses.IsAlternateDomain(a.Domain)
}

// CertifiedSpec decides whether a delivered message is certified: by its
// Certified-Delivery header (an error means it is malformed and the message
// must be refused) or by an operator rule.
func (s *Service) CertifiedSpec(raw []byte, sender, account string) (Spec, bool, error) {
	v, ok, err := FindRequest(raw)
	if err != nil {
		return Spec{}, false, err
	}
	if ok {
		spec, err := ParseSpec(v, s.now())
		return spec, err == nil, err
	}
	sender = strings.ToLower(sender)
	for _, r := range s.opts.Rules {
		if globMatch(r.Recipient, account) && globMatch(r.Sender, sender) {
			return Spec{}, true, nil
		}
	}
	return Spec{}, false, nil
}

func globMatch(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, err := path.Match(strings.ToLower(pattern), s)
	return err == nil && ok
}

// headerValue finds a header field in M's header block without parsing
// the rest; a message with no header block has none.
func headerValue(raw []byte, name string) (string, bool) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", false
	}
	vals, ok := msg.Header[textproto.CanonicalMIMEHeaderKey(name)]
	if !ok || len(vals) == 0 {
		return "", false
	}
	return vals[0], true
}

// notifySender queues the notices of one event to the item's sender: a
// mail (through the relay) with each evidence record of the event attached
// as an application/jose part, and a signed POST to each webhook. Failure
// to queue is logged, not fatal: the evidence is in the log and the API.
func (s *Service) notifySender(kv kv.Records, it *Item, event, subject, text string, records []evidence.Entry, att ...notifier.Attachment) {
	if s.opts.Notices == nil {
		return
	}
	var jws []string
	for i, r := range records {
		name := fmt.Sprintf("%d-%s.jws", i+1, recordType(r))
		att = append([]notifier.Attachment{{Name: name, ContentType: "application/jose", Data: []byte(r.JWS)}}, att...)
		jws = append(jws, r.JWS)
	}
	if it.MailsNotices() {
		n := notifier.Notice{
			ID:          "cm-" + event + "-" + it.Label,
			Ref:         it.Label,
			To:          []string{it.Sender},
			From:        s.opts.Postmaster,
			Subject:     subject,
			Text:        text,
			Attachments: att,
		}
		if err := s.opts.Notices.Enqueue(kv, n); err != nil {
			s.lg.Warn("queueing a notice to the sender", "label", it.Label, "event", event, "err", err)
		}
	} else if it.Sender != "" {
		s.lg.Info("notice not mailed: the sender is not authenticated (evidence by label only)", "label", it.Label, "event", event, "sender", it.Sender)
	}
	for i, url := range s.opts.Webhooks {
		payload, err := json.Marshal(map[string]any{
			"event": event, "label": it.Label, "hash": it.Hash, "state": it.State,
			"recipient": it.Recipient, "sender": it.Sender, "sender_auth": it.SenderAuth, "records": jws,
		})
		if err != nil {
			continue
		}
		n := notifier.Notice{ID: fmt.Sprintf("cm-%s-%s-w%d", event, it.Label, i), Ref: it.Label, Kind: notifier.KindWebhook, URL: url, Payload: payload}
		if err := s.opts.Notices.Enqueue(kv, n); err != nil {
			s.lg.Warn("queueing a webhook notice", "label", it.Label, "event", event, "url", url, "err", err)
		}
	}
}

func recordType(e evidence.Entry) string {
	if r, err := e.Record(); err == nil {
		return string(r.Type)
	}
	return "record"
}

// Handlers are the timer handlers of certified items, for Store.RunTimers.
func (s *Service) Handlers() map[string]mailbox.TimerHandler {
	return map[string]mailbox.TimerHandler{
		TimerExpiry: func(ctx context.Context, tx *mailbox.Tx, t mailbox.Timer) error { return s.expire(tx, t.ID) },
		TimerForward: func(ctx context.Context, tx *mailbox.Tx, t mailbox.Timer) error {
			return s.forwardToAlternates(tx, t.ID)
		},
	}
}

// Bundle builds the evidence bundle of an item: its records with inclusion
// proofs into a signed checkpoint, and the public keys of everyone who
// could have signed for it.
func (s *Service) Bundle(label string) (*evidence.Bundle, error) {
	var b *evidence.Bundle
	err := s.store.Update(func(tx *mailbox.Tx) error {
		it, err := GetItem(tx, label)
		if err != nil {
			return err
		}
		var parties []evidence.PartyKey
		for _, h := range it.Holders {
			keys, err := Keys(tx, h)
			if err != nil {
				return err
			}
			// A holder's account may have been deleted since it signed.
			gone, err := deletedKeys(tx, h)
			if err != nil {
				return err
			}
			keys = append(keys, gone...)
			for _, k := range keys {
				pk, err := evidence.NewPartyKey(h, k.Public)
				if err != nil {
					return err
				}
				parties = append(parties, pk)
			}
		}
		b, err = s.log.BuildBundle(tx, label, parties...)
		return err
	})
	return b, err
}

// fromAddress is M's From address, or "".
func fromAddress(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	addrs, err := msg.Header.AddressList("From")
	if err != nil || len(addrs) == 0 {
		return ""
	}
	return addrs[0].Address
}
