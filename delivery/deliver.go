package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"certmail/addressing"
	"certmail/mailbox"
)

// Errors a delivery can end with, per recipient. Callers map them to their
// protocol: LMTP reply codes, sysexits codes, admin error codes. They are
// wrapped with details; test with errors.Is.
var (
	// ErrNoUser: no local account for the recipient (LMTP 550 5.1.1,
	// EX_NOUSER).
	ErrNoUser = errors.New("no such user")
	// ErrBadAddress: the recipient is not a usable address (LMTP 550 5.1.3).
	ErrBadAddress = errors.New("bad recipient address")
	// ErrDomain: the recipient's domain is not served (LMTP 550 5.1.2).
	ErrDomain = errors.New("domain not served here")
	// ErrTooLarge: the message exceeds the size limit (LMTP 552 5.3.4).
	ErrTooLarge = errors.New("message too large")
	// ErrTemporary: the store failed; the sender should retry (LMTP 451
	// 4.3.0, EX_TEMPFAIL).
	ErrTemporary = errors.New("temporary store failure")
	// ErrMalformed: the message cannot be accepted as it is, e.g. a
	// malformed Certified-Delivery header (LMTP 550 5.6.0, EX_DATAERR).
	ErrMalformed = errors.New("message refused")
	// A full disk is mailbox.ErrDiskFull, wrapped like ErrTemporary
	// (LMTP 452 4.3.1, EX_TEMPFAIL). A recipient over quota is
	// mailbox.ErrOverQuota (LMTP 552 5.2.2, EX_CANTCREAT).
)

// Certifier is the hook for certified items. When set, Deliver offers it
// each recipient's copy inside the delivery transaction; if it handles the
// copy (holds M, puts a stub in the INBOX, records a COP), the ordinary
// append is skipped for that recipient. It runs under the store's write
// lock and must not call the store's own Update.
type Certifier interface {
	// Check runs before anything is stored, outside the write lock, and
	// says whether the recipient's copy is certified (then Deliver hands
	// it to DeliverCertified, byte for byte); an error refuses the
	// message for the recipient (ErrMalformed, with the reason).
	Check(raw []byte, sender, account string) (certified bool, err error)
	DeliverCertified(tx *mailbox.Tx, item Item) (handled bool, err error)
}

// Envelope is what the transport tells of a message besides its
// recipients.
type Envelope struct {
	// Sender is the envelope sender (MAIL FROM), if known.
	Sender string
	// SenderAuth says how the transport authenticated Sender, as
	// certified.PostRequest.SenderAuth; empty if it did not. Only an
	// authenticated sender is mailed certified notices.
	SenderAuth string
	// Trace prepends Return-Path and, for a single recipient,
	// Delivered-To to ordinary mail (trace.go), as a final delivery
	// does: LMTP sets it. A pipe transport's MTA writes them itself
	// (Postfix pipe(8) flags R and D).
	Trace bool
	// Remote is the client's address, for the log.
	Remote string
}

// Item is one recipient's copy of a message being delivered.
type Item struct {
	// Sender is the envelope sender (MAIL FROM), if known, and
	// SenderAuth how it was authenticated (Envelope).
	Sender     string
	SenderAuth string
	// Recipient is the address as given; Account the resolved account.
	Recipient string
	Account   string
	// Mailbox is the target mailbox for an ordinary message.
	Mailbox string
	// Raw is M, byte for byte; Blob is where the store already holds it
	// (with a reference owned by the delivery, released after the
	// transaction's appends have taken theirs).
	Raw  []byte
	Blob uint64
}

// Options configure a Deliverer.
type Options struct {
	// Addresses says which recipients are local accounts (nil: bare
	// names and any domain).
	Addresses *addressing.Resolver
	// MaxMessageBytes bounds the size of a message; zero means no limit.
	MaxMessageBytes int64
	// Certifier, if set, takes over certified items (see Certifier).
	Certifier Certifier
	Logger    *slog.Logger
}

// Deliverer stores incoming messages for local recipients. It is safe for
// concurrent use.
type Deliverer struct {
	store *mailbox.Store
	opts  Options
	log   *slog.Logger

	// mu guards closed; inflight counts deliveries that passed the closed
	// check, so Close can wait for them before the store closes.
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

// CheckSpace refuses (mailbox.ErrDiskFull, wrapped in ErrTemporary) a
// message of size bytes the disk has no room for, so that LMTP can say
// so before the data is sent.
func (d *Deliverer) CheckSpace(size int64) error {
	if err := d.store.CheckSpace(size); err != nil {
		return fmt.Errorf("%w: %w", ErrTemporary, err)
	}
	return nil
}

// NewDeliverer returns a Deliverer over store.
func NewDeliverer(store *mailbox.Store, opts Options) *Deliverer {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Addresses == nil {
		opts.Addresses = addressing.New(addressing.Options{})
	}
	return &Deliverer{store: store, opts: opts, log: logger}
}

// MaxMessageBytes is the configured size limit (zero: none).
func (d *Deliverer) MaxMessageBytes() int64 { return d.opts.MaxMessageBytes }

// Close refuses new deliveries and waits for the running ones, so that
// the store can be closed after it without cutting a transaction short.
func (d *Deliverer) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		d.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for deliveries to finish: %w", ctx.Err())
	}
}

func (d *Deliverer) enter() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.inflight.Add(1)
	return true
}

// Resolve maps a recipient ("alice", "Alice@example.org") to its account
// by the addressing rule, or fails with ErrBadAddress, ErrDomain, ErrNoUser
// or ErrTemporary. A local part no account can have is an unknown user, as
// far as the sender is concerned.
func (d *Deliverer) Resolve(rcpt string) (string, error) {
	a, err := d.opts.Addresses.ResolveRecipient(d.store, rcpt)
	switch {
	case err == nil:
		return a.Account, nil
	case errors.Is(err, addressing.ErrBadAddress):
		return "", fmt.Errorf("<%s>: %w", rcpt, ErrBadAddress)
	case errors.Is(err, addressing.ErrNotLocal):
		return "", fmt.Errorf("<%s>: %w", rcpt, ErrDomain)
	case errors.Is(err, addressing.ErrNoAccount):
		return "", fmt.Errorf("<%s>: %w", rcpt, ErrNoUser)
	}
	return "", fmt.Errorf("%w: %w", ErrTemporary, err)
}

// account maps a recipient to its account name as Resolve does, without
// asking the store whether the account exists: the delivery's transaction
// finds that out (place) as it reads the account's mailbox, and a
// separate read cost a delivery on PostgreSQL a transaction of its own,
// on top of RCPT's (which Resolve answers).
func (d *Deliverer) account(rcpt string) (string, error) {
	a, err := d.opts.Addresses.Recipient(rcpt)
	switch {
	case err == nil:
		return a.Account, nil
	case errors.Is(err, addressing.ErrBadAddress):
		return "", fmt.Errorf("<%s>: %w", rcpt, ErrBadAddress)
	case errors.Is(err, addressing.ErrNotLocal):
		return "", fmt.Errorf("<%s>: %w", rcpt, ErrDomain)
	case errors.Is(err, addressing.ErrNoAccount):
		return "", fmt.Errorf("<%s>: %w", rcpt, ErrNoUser)
	}
	return "", fmt.Errorf("%w: %w", ErrTemporary, err)
}

// Addresses is the rule recipients are resolved by.
func (d *Deliverer) Addresses() *addressing.Resolver { return d.opts.Addresses }

// Deliver stores raw for each recipient into mailbox (INBOX when empty;
// INBOX too when the account has no such mailbox, rather than bounce mail
// over a folder name) and returns one error per recipient, nil for those
// whose copy is durable. It returns only after the store has synced, so a
// nil error may be reported to the sender as accepted.
//
// The bytes are stored once, shared by every recipient's copy, and all
// copies are written in one transaction; if that fails, each recipient is
// retried in its own transaction so one bad recipient cannot fail the rest.
// Recipients resolving to the same account get one copy.
func (d *Deliverer) Deliver(ctx context.Context, rcpts []string, mbox string, raw []byte) []error {
	return d.DeliverFrom(ctx, "", rcpts, mbox, raw)
}

// DeliverFrom is Deliver with the envelope sender, which certified items
// use to send the sender its receipts.
func (d *Deliverer) DeliverFrom(ctx context.Context, sender string, rcpts []string, mbox string, raw []byte) []error {
	return d.DeliverEnvelope(ctx, Envelope{Sender: sender}, rcpts, mbox, raw)
}

// DeliverEnvelope is Deliver with what the transport knows of the sender.
func (d *Deliverer) DeliverEnvelope(ctx context.Context, env Envelope, rcpts []string, mbox string, raw []byte) []error {
	sender := env.Sender
	errs := make([]error, len(rcpts))
	accts := make([]string, len(rcpts))
	placed := make(map[string]string) // account → mailbox actually used
	// One log line per recipient, whatever the outcome.
	defer func() { d.logResults(env, rcpts, accts, placed, raw, errs) }()
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if !d.enter() {
		return fail(fmt.Errorf("%w: shutting down", ErrTemporary))
	}
	defer d.inflight.Done()
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrTemporary, err))
	}
	if d.opts.MaxMessageBytes > 0 && int64(len(raw)) > d.opts.MaxMessageBytes {
		return fail(fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), d.opts.MaxMessageBytes))
	}
	if err := d.store.CheckSpace(int64(len(raw))); err != nil {
		d.log.Warn("delivery refused: disk full", "rcpts", len(rcpts), "size", len(raw), "err", err)
		return fail(fmt.Errorf("%w: %w", ErrTemporary, err))
	}
	if mbox == "" {
		mbox = "INBOX"
	}

	// Resolve outside the write lock; index of the first recipient per
	// account, so duplicates share one copy and one status.
	certified := make([]bool, len(rcpts))
	first := make(map[string]int)
	var order []int
	for i, r := range rcpts {
		acct, err := d.account(r)
		if err != nil {
			errs[i] = err
			continue
		}
		if c := d.opts.Certifier; c != nil {
			if certified[i], err = c.Check(raw, sender, acct); err != nil {
				errs[i] = fmt.Errorf("<%s>: %w: %w", r, ErrMalformed, err)
				continue
			}
		}
		accts[i] = acct
		if _, dup := first[acct]; !dup {
			first[acct] = i
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return errs
	}

	// Ordinary copies may carry trace fields; certified ones keep M's
	// bytes (trace.go). Each kind is stored once, shared by its copies.
	var ordinary []int
	for _, i := range order {
		if !certified[i] {
			ordinary = append(ordinary, i)
		}
	}
	var kinds []*copies
	if len(ordinary) < len(order) {
		kinds = append(kinds, &copies{raw: raw, sum: d.store.Summarize(raw), certified: true})
	}
	if len(ordinary) > 0 {
		stored := raw
		if env.Trace {
			deliveredTo := ""
			if len(ordinary) == 1 {
				deliveredTo = d.deliveredTo(rcpts[ordinary[0]], accts[ordinary[0]])
			}
			stored = append(traceHeaders(raw, env.Sender, deliveredTo), raw...)
		}
		// Parsed here, not under the store's write lock.
		kinds = append(kinds, &copies{raw: stored, sum: d.store.Summarize(stored)})
	}
	kindOf := func(i int) *copies {
		if certified[i] {
			return kinds[0]
		}
		return kinds[len(kinds)-1]
	}

	// store puts the recipients' copies in one transaction. Ordinary
	// copies may share it with other deliveries arriving at the same
	// time (mailbox.Store.UpdateGrouped); a certified item's posting
	// (stub, evidence, timers) has a transaction of its own.
	update := d.store.Update
	if len(ordinary) == len(order) {
		var size int64
		for _, k := range kinds {
			size += int64(len(k.raw) + len(k.sum))
		}
		var targets []mailbox.AppendTarget
		for _, i := range order {
			targets = append(targets, mailbox.AppendTarget{Account: accts[i], Mailbox: mbox})
		}
		update = func(fn func(tx *mailbox.Tx) error) error { return d.store.UpdateGrouped(size, targets, fn) }
	}
	store := func(idx []int) error {
		return update(func(tx *mailbox.Tx) error {
			for _, k := range kinds {
				k.blob = 0
			}
			for _, i := range idx {
				k := kindOf(i)
				if k.blob == 0 {
					blob, err := tx.PutBlobSummary(k.raw, k.sum)
					if err != nil {
						return err
					}
					k.blob = blob
				}
				where, err := d.place(tx, env, rcpts[i], accts[i], mbox, k, k.blob)
				if err != nil {
					return fmt.Errorf("<%s>: %w", rcpts[i], err)
				}
				placed[accts[i]] = where
			}
			// Every copy holds its own reference now; drop PutBlob's.
			for _, k := range kinds {
				if k.blob != 0 {
					if err := tx.UnrefBlob(k.blob); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	err := store(order)
	// One recipient at a time cannot fit where all of them did not.
	if err != nil && len(order) > 1 && !errors.Is(err, mailbox.ErrDiskFull) {
		d.log.Warn("delivery transaction failed; retrying recipient by recipient", "err", err)
		clear(placed)
		for _, i := range order {
			if err := store([]int{i}); err != nil {
				errs[i] = d.storeErr(rcpts[i], err)
			}
		}
	} else if err != nil {
		errs[order[0]] = d.storeErr(rcpts[order[0]], err)
	}
	if len(placed) == 0 {
		d.copyDupErrs(errs, accts, first)
		return errs
	}

	// Durable before anyone hears "accepted". Concurrent deliveries share
	// this fsync (the store's group syncer).
	if err := d.store.Sync(); err != nil {
		d.log.Error("syncing store after delivery", "err", err)
		for _, i := range order {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("<%s>: syncing: %w: %w", rcpts[i], ErrTemporary, err)
			}
		}
	}
	d.copyDupErrs(errs, accts, first)
	return errs
}

// copies is one kind of stored bytes in a delivery (certified: M as
// sent; ordinary: with trace fields) and its blob in the transaction.
type copies struct {
	raw, sum  []byte
	certified bool
	blob      uint64
}

// deliveredTo is the address a Delivered-To names: the recipient as the
// MTA gave it, or for a bare name the account's address in the primary
// domain.
func (d *Deliverer) deliveredTo(rcpt, acct string) string {
	if strings.Contains(rcpt, "@") {
		return rcpt
	}
	return acct + "@" + d.opts.Addresses.Primary()
}

// logResults writes the delivery's line for each recipient: what an
// operator greps for when a sender asks where a message went (sender,
// recipient, Message-ID, size, mailbox, result).
func (d *Deliverer) logResults(env Envelope, rcpts, accts []string, placed map[string]string, raw []byte, errs []error) {
	msgID := messageID(raw)
	for i, r := range rcpts {
		args := []any{"rcpt", r, "account", accts[i], "from", env.Sender, "message_id", msgID, "size", len(raw)}
		if env.Remote != "" {
			args = append(args, "remote", env.Remote)
		}
		if errs[i] == nil {
			where := placed[accts[i]]
			result := "stored"
			if where == certifiedMailbox {
				result, where = "certified", "" // M is held in no mailbox; the stub is in INBOX
			}
			d.log.Info("delivered", append(args, "mailbox", where, "result", result)...)
			continue
		}
		result, level := "rejected", slog.LevelInfo
		if errors.Is(errs[i], ErrTemporary) {
			result, level = "deferred", slog.LevelWarn
		}
		d.log.Log(context.Background(), level, "not delivered", append(args, "result", result, "err", errs[i])...)
	}
}

// copyDupErrs gives a recipient that duplicates an earlier one (same
// account) the earlier one's status.
func (d *Deliverer) copyDupErrs(errs []error, accts []string, first map[string]int) {
	for i, a := range accts {
		if a == "" {
			continue
		}
		if j := first[a]; j != i {
			errs[i] = errs[j]
		}
	}
}

func (d *Deliverer) storeErr(rcpt string, err error) error {
	if errors.Is(err, mailbox.ErrDiskFull) {
		// Expected until an operator frees space; not a store fault.
		d.log.Warn("delivery refused: disk full", "rcpt", rcpt, "err", err)
		return fmt.Errorf("<%s>: %w: %w", rcpt, ErrTemporary, err)
	}
	if errors.Is(err, mailbox.ErrOverQuota) {
		// The recipient's limit (mailbox/quota.go), not a store fault.
		d.log.Info("delivery refused: over quota", "rcpt", rcpt, "err", err)
		return fmt.Errorf("<%s>: %w", rcpt, err)
	}
	if errors.Is(err, mailbox.ErrNoAccount) {
		// No such account: deleted since RCPT, or a caller's unknown
		// recipient (found out in the transaction, DeliverEnvelope).
		d.log.Info("delivery refused: no such account", "rcpt", rcpt, "err", err)
		return fmt.Errorf("<%s>: %w", rcpt, ErrNoUser)
	}
	d.log.Error("storing message", "rcpt", rcpt, "err", err)
	return fmt.Errorf("<%s>: %w: %w", rcpt, ErrTemporary, err)
}

// certifiedMailbox is what place says of a copy the Certifier took.
const certifiedMailbox = "(certified)"

// place stores one recipient's copy and says in which mailbox it went.
// This is the per-recipient branch point: certified items go to the
// Certifier, everything else into the mailbox.
func (d *Deliverer) place(tx *mailbox.Tx, env Envelope, rcpt, acct, mbox string, k *copies, blob uint64) (string, error) {
	if c := d.opts.Certifier; c != nil && k.certified {
		// The recipient was not looked up before the transaction
		// (account): nothing is posted for an account that is gone.
		if err := accountExists(tx, acct); err != nil {
			return "", err
		}
		handled, err := c.DeliverCertified(tx, Item{Sender: env.Sender, SenderAuth: env.SenderAuth, Recipient: rcpt, Account: acct, Mailbox: mbox, Raw: k.raw, Blob: blob})
		if err != nil {
			return "", fmt.Errorf("certified delivery: %w", err)
		}
		if handled {
			return certifiedMailbox, nil
		}
	}
	// The record read here is the one the append uses (AppendBlobTo):
	// one read of it, not two.
	mb, err := tx.Mailbox(acct, mbox)
	if (errors.Is(err, mailbox.ErrNoMailbox) || errors.Is(err, mailbox.ErrBadName)) && !strings.EqualFold(mbox, "INBOX") {
		d.log.Warn("no such mailbox; delivering to INBOX", "account", acct, "mailbox", mbox)
		mbox = "INBOX"
		mb, err = tx.Mailbox(acct, mbox)
	}
	if errors.Is(err, mailbox.ErrNoMailbox) {
		// Every account has an INBOX: is the account there at all?
		if aerr := accountExists(tx, acct); aerr != nil {
			return "", aerr
		}
	}
	if err != nil {
		return "", err
	}
	if _, err := tx.AppendBlobTo(acct, mb, blob, mailbox.AppendOptions{}); err != nil {
		return "", err
	}
	return mbox, nil
}

// accountExists fails with mailbox.ErrNoAccount if acct has gone (deleted
// since RCPT, or never there for a caller that did not ask Resolve).
func accountExists(tx *mailbox.Tx, acct string) error {
	ok, err := tx.AccountExists(acct)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("account %s: %w", acct, mailbox.ErrNoAccount)
	}
	return nil
}
