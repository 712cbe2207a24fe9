package forwarding

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"certmail/addressing"
	"certmail/certified"
	"certmail/mailbox"
	"certmail/notifier"

	"certmail/kv"

	"certmail/kv/keyspace"
)

// Timer kinds.
const (
	TimerUnread = "fw-unread"
	TimerAlert  = "fw-alert"
)

// DefaultHopLimit bounds chains of forwards of one message.
const DefaultHopLimit = 3

// Options configure the Service.
type Options struct {
	// Addresses says which targets are local accounts (the rest go out
	// through the notice outbox) and in which domain local accounts'
	// addresses are written.
	Addresses  *addressing.Resolver
	Postmaster string
	HopLimit   int
	// AlertAfter, if positive, sends an operator alert for each message
	// unread that long, once per message, to AlertTo and the webhooks.
	AlertAfter time.Duration
	AlertTo    []string
	Webhooks   []string
	// ConfigPolicies come from the config file; they cannot be cleared
	// by command.
	ConfigPolicies []Policy
	Certified      *certified.Service
	Notices        certified.Notices
	Logger         *slog.Logger
	Now            func() time.Time
	// PolicyRefresh is how old the stored policies may be before a
	// service on a store other nodes write too reads them again (zero:
	// DefaultPolicyRefresh).
	PolicyRefresh time.Duration
}

// DefaultPolicyRefresh bounds how long a policy set through one node (or
// by the command line against the database) takes to be in force on the
// others.
const DefaultPolicyRefresh = 2 * time.Second

// Service runs auto-forward and unread monitoring on a store.
type Service struct {
	store *mailbox.Store
	opts  Options
	log   *slog.Logger

	mu       sync.RWMutex
	policies map[policyKey]Policy
	// loaded is when the stored policies were last read.
	loaded time.Time
}

// New loads the stored policies and hooks the service into the store.
func New(store *mailbox.Store, opts Options) (*Service, error) {
	if opts.HopLimit <= 0 {
		opts.HopLimit = DefaultHopLimit
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Addresses == nil {
		opts.Addresses = addressing.New(addressing.Options{})
	}
	if opts.PolicyRefresh <= 0 {
		opts.PolicyRefresh = DefaultPolicyRefresh
	}
	s := &Service{store: store, opts: opts, log: opts.Logger, policies: make(map[policyKey]Policy), loaded: time.Now()}
	var stored []Policy
	if err := store.View(func(tx *mailbox.Tx) error {
		var err error
		stored, err = loadPolicies(tx)
		return err
	}); err != nil {
		return nil, err
	}
	for _, p := range stored {
		s.policies[policyKey{p.Account, p.mailboxName()}] = p
	}
	for _, p := range opts.ConfigPolicies {
		p.Source = "config"
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		s.policies[policyKey{p.Account, p.mailboxName()}] = p
	}
	store.AddHooks(mailbox.Hooks{AfterInsert: s.afterInsert, AfterFlags: s.afterFlags, AccountDeleted: s.accountDeleted})
	return s, nil
}

func (s *Service) now() time.Time { return s.opts.Now().UTC() }

func (s *Service) policy(acct, mb string) (Policy, bool) {
	if s.store.Shared() {
		s.refreshPolicies()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.policies[policyKey{acct, mb}]
	return p, ok
}

// refreshPolicies reads the stored policies again when they are older than
// Options.PolicyRefresh: on a store other nodes write, a policy may have
// been set or cleared elsewhere. Config policies stay as they are.
func (s *Service) refreshPolicies() {
	s.mu.RLock()
	fresh := time.Since(s.loaded) < s.opts.PolicyRefresh
	s.mu.RUnlock()
	if fresh {
		return
	}
	var stored []Policy
	if err := s.store.View(func(tx *mailbox.Tx) error {
		var err error
		stored, err = loadPolicies(tx)
		return err
	}); err != nil {
		s.log.Warn("reading the forwarding policies again", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, p := range s.policies {
		if p.Source != "config" {
			delete(s.policies, k)
		}
	}
	for _, p := range stored {
		k := policyKey{p.Account, p.mailboxName()}
		if cur, ok := s.policies[k]; ok && cur.Source == "config" {
			continue
		}
		s.policies[k] = p
	}
	s.loaded = time.Now()
}

// SetPolicy stores a policy (replacing the one for the same mailbox).
// Messages already in the mailbox are not re-timed; new arrivals are.
func (s *Service) SetPolicy(p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	p.Source = "store"
	if cur, ok := s.policy(p.Account, p.mailboxName()); ok && cur.Source == "config" {
		return fmt.Errorf("the policy for %s/%s comes from the config file; change it there", p.Account, p.mailboxName())
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := s.store.Update(func(tx *mailbox.Tx) error {
		if _, err := tx.Account(p.Account); err != nil {
			return err
		}
		return tx.Set(storedPolicyKey(p.Account, p.mailboxName()), b)
	}); err != nil {
		return err
	}
	s.mu.Lock()
	s.policies[policyKey{p.Account, p.mailboxName()}] = p
	s.mu.Unlock()
	return s.store.Sync()
}

// ClearPolicy removes an account's stored policy for a mailbox (all its
// mailboxes when mb is empty). Pending timers then find no policy and
// lapse.
func (s *Service) ClearPolicy(acct, mb string) error {
	acct, err := mailbox.NormalizeAccount(acct)
	if err != nil {
		return err
	}
	if s.store.Shared() {
		s.refreshPolicies()
	}
	var gone []policyKey
	s.mu.RLock()
	for k, p := range s.policies {
		if k.acct == acct && (mb == "" || strings.EqualFold(k.mailbox, mb)) {
			if p.Source == "config" {
				s.mu.RUnlock()
				return fmt.Errorf("the policy for %s/%s comes from the config file; change it there", acct, k.mailbox)
			}
			gone = append(gone, k)
		}
	}
	s.mu.RUnlock()
	if len(gone) == 0 {
		return fmt.Errorf("%s has no forwarding policy", acct)
	}
	if err := s.store.Update(func(tx *mailbox.Tx) error {
		for _, k := range gone {
			if err := tx.Delete(storedPolicyKey(k.acct, k.mailbox)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	s.mu.Lock()
	for _, k := range gone {
		delete(s.policies, k)
	}
	s.mu.Unlock()
	return s.store.Sync()
}

// Policies lists the policies of an account (all accounts when empty).
func (s *Service) Policies(acct string) []Policy {
	if s.store.Shared() {
		s.refreshPolicies()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Policy
	for _, p := range s.policies {
		if acct == "" || p.Account == acct {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Policy) int { return strings.Compare(a.Account+"/"+a.Mailbox, b.Account+"/"+b.Mailbox) })
	return out
}

func timerID(acct string, mboxID, uid uint32) string {
	return acct + "/" + strconv.FormatUint(uint64(mboxID), 10) + "/" + strconv.FormatUint(uint64(uid), 10)
}

func parseTimerID(id string) (string, uint32, uint32, error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 {
		return "", 0, 0, fmt.Errorf("bad timer id %q", id)
	}
	mb, err1 := strconv.ParseUint(parts[1], 10, 32)
	uid, err2 := strconv.ParseUint(parts[2], 10, 32)
	if err1 != nil || err2 != nil {
		return "", 0, 0, fmt.Errorf("bad timer id %q", id)
	}
	return parts[0], uint32(mb), uint32(uid), nil
}

// afterInsert times a new message when its mailbox has a policy (and,
// for alerts, always).
func (s *Service) afterInsert(tx *mailbox.Tx, acct string, mb *mailbox.MailboxInfo, m *mailbox.Message) error {
	if !m.SeenAt.IsZero() || m.HasFlag(mailbox.FlagSeen) {
		if _, stub, err := certified.StubLabel(tx, m.Blob); err != nil || !stub {
			return err
		}
	}
	id := timerID(acct, mb.ID, m.UID)
	if p, ok := s.policy(acct, mb.Name); ok {
		due := m.InternalDate.Add(p.After)
		if err := tx.ScheduleTimer(mailbox.Timer{Due: due, Kind: TimerUnread, ID: id}); err != nil {
			return err
		}
	}
	if s.opts.AlertAfter > 0 && (len(s.opts.AlertTo) > 0 || len(s.opts.Webhooks) > 0) {
		if err := tx.ScheduleTimer(mailbox.Timer{Due: m.InternalDate.Add(s.opts.AlertAfter), Kind: TimerAlert, ID: id}); err != nil {
			return err
		}
	}
	return nil
}

// afterFlags cancels the timers of a message that was read. A certified
// stub stays unread until a COD: reading it does not cancel its forward.
func (s *Service) afterFlags(tx *mailbox.Tx, acct string, mboxID uint32, old, updated *mailbox.Message) error {
	if old.HasFlag(mailbox.FlagSeen) || !updated.HasFlag(mailbox.FlagSeen) {
		return nil
	}
	if _, stub, err := certified.StubLabel(tx, updated.Blob); err != nil || stub {
		return err
	}
	id := timerID(acct, mboxID, updated.UID)
	if err := tx.CancelTimer(TimerUnread, id); err != nil {
		return err
	}
	return tx.CancelTimer(TimerAlert, id)
}

// accountDeleted ends an account's auto-forward state in the transaction
// that deletes it: its stored policies (a later account of the name sets
// its own; a policy in the config file names the account on purpose and
// stays) and the unread and alert timers of its messages.
func (s *Service) accountDeleted(tx *mailbox.Tx, acct string) error {
	var keys [][]byte
	if err := tx.Scan(storedPolicyKey(acct, ""), func(k, _ []byte) error {
		keys = append(keys, slices.Clone(k))
		return nil
	}); err != nil {
		return fmt.Errorf("finding the policies of %s: %w", acct, err)
	}
	for _, k := range keys {
		if err := tx.Delete(k); err != nil {
			return err
		}
	}
	for _, kind := range []string{TimerUnread, TimerAlert} {
		if _, err := tx.CancelTimers(kind, acct+"/"); err != nil {
			return err
		}
	}
	tx.OnCommit(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for k, p := range s.policies {
			if k.acct == acct && p.Source != "config" {
				delete(s.policies, k)
			}
		}
	})
	return nil
}

// Handlers are the service's timer handlers, for Store.RunTimers.
func (s *Service) Handlers() map[string]mailbox.TimerHandler {
	return map[string]mailbox.TimerHandler{
		TimerUnread: func(ctx context.Context, tx *mailbox.Tx, t mailbox.Timer) error { return s.fireUnread(tx, t.ID) },
		TimerAlert:  func(ctx context.Context, tx *mailbox.Tx, t mailbox.Timer) error { return s.fireAlert(tx, t.ID) },
	}
}

// fireUnread forwards a message that stayed unread, in the transaction
// that removes its timer (mailbox.Store.FireTimer): whichever node fires
// it, the message is forwarded once.
func (s *Service) fireUnread(tx *mailbox.Tx, id string) error {
	acct, mboxID, uid, err := parseTimerID(id)
	if err != nil {
		s.log.Warn("dropping a forward timer of a bad ID", "id", id, "err", err)
		return nil
	}
	m, err := tx.Message(acct, mboxID, uid)
	if errors.Is(err, mailbox.ErrNoMessage) {
		return nil // expunged or moved: the new copy has its own timer
	}
	if err != nil {
		return err
	}
	mb, err := tx.MailboxByID(acct, mboxID)
	if err != nil {
		return nil
	}
	p, ok := s.policy(acct, mb.Name)
	if !ok {
		return nil // the policy was cleared
	}
	return s.forward(tx, acct, mb, m, p.To, "policy "+acct+"/"+mb.Name, p.CertifiedOnly, false)
}

// forward sends one message to alternates inside tx.
func (s *Service) forward(tx *mailbox.Tx, acct string, mb *mailbox.MailboxInfo, m *mailbox.Message, to []string, actor string, certifiedOnly, operator bool) error {
	label, isStub, err := certified.StubLabel(tx, m.Blob)
	if err != nil {
		return err
	}
	if isStub {
		if s.opts.Certified == nil {
			return nil
		}
		reason := "unread (no certificate of delivery) past the policy's timeout"
		if operator {
			reason = "forwarded by an operator"
		}
		done, err := s.opts.Certified.ForwardStub(tx, label, acct, to, actor, reason, operator)
		if err != nil {
			return err
		}
		if len(done) > 0 {
			return s.count(tx, len(done))
		}
		return nil
	}
	if certifiedOnly {
		return nil
	}
	if !operator && m.HasFlag(mailbox.FlagSeen) {
		return nil
	}
	raw, err := tx.BlobBytes(m.Blob)
	if err != nil {
		return err
	}
	if hops := countResent(raw); hops >= s.opts.HopLimit {
		s.log.Info("not forwarding: hop limit reached", "account", acct, "uid", m.UID, "hops", hops)
		return nil
	}
	had, hadKey, err := s.hadSet(tx, raw, acct)
	if err != nil {
		return err
	}
	var local, external []string
	for _, t := range to {
		a, err := s.opts.Addresses.Resolve(tx, t)
		switch {
		case err != nil:
			s.log.Info("not forwarding to an alternate", "account", acct, "uid", m.UID, "alternate", t, "reason", err)
		case a.Local():
			if !slices.Contains(had, a.Account) {
				local = append(local, a.Account)
			}
		case !slices.Contains(had, a.Addr):
			external = append(external, a.Addr)
		}
	}
	if len(local)+len(external) == 0 {
		s.log.Info("not forwarding: every alternate already had the message", "account", acct, "uid", m.UID)
		return nil
	}
	resentTo := make([]string, 0, len(local)+len(external))
	for _, a := range local {
		resentTo = append(resentTo, s.opts.Addresses.AddressOf(a))
	}
	resentTo = append(resentTo, external...)
	resent, msgID, nonce := s.resent(raw, s.opts.Addresses.AddressOf(acct), resentTo)
	if len(local) > 0 {
		blob, err := tx.PutBlob(resent)
		if err != nil {
			return err
		}
		for _, a := range local {
			if _, err := tx.AppendBlob(a, "INBOX", blob, mailbox.AppendOptions{}); err != nil {
				return fmt.Errorf("forwarding to %s: %w", a, err)
			}
		}
		if err := tx.UnrefBlob(blob); err != nil {
			return err
		}
	}
	if len(external) > 0 {
		if s.opts.Notices == nil {
			return fmt.Errorf("cannot forward to %v: no outbox", external)
		}
		if err := s.opts.Notices.Enqueue(tx, notifier.Notice{
			ID: "fw-" + nonce, To: external, From: s.opts.Addresses.AddressOf(acct), Raw: resent,
		}); err != nil {
			return fmt.Errorf("queueing the forward to %v: %w", external, err)
		}
	}
	if _, err := tx.SetFlags(acct, mb.ID, []uint32{m.UID}, mailbox.FlagsAdd, []string{"$Forwarded"}); err != nil {
		return err
	}
	had = append(had, local...)
	had = append(had, external...)
	if err := setJSON(tx, hadKey, had); err != nil {
		return err
	}
	if err := s.audit(tx, Forward{Time: s.now(), Account: acct, Mailbox: mb.Name, UID: m.UID,
		To: append(local, external...), Actor: actor, ResentMessageID: msgID}); err != nil {
		return err
	}
	tx.OnCommit(func() {
		s.log.Info("forwarded unread message", "account", acct, "mailbox", mb.Name, "uid", m.UID, "to", resentTo, "actor", actor)
	})
	return s.count(tx, 1)
}

// hadSet is who already had a message (by Message-ID, or by content when
// it has none): forwarding never goes back to one of them, which stops
// loops such as A → desk → A.
func (s *Service) hadSet(tx *mailbox.Tx, raw []byte, owner string) ([]string, []byte, error) {
	id := messageID(raw)
	if id == "" {
		sum := sha256.Sum256(raw)
		id = hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256([]byte(id))
	key := []byte(keyspace.Forwarding + "had/" + hex.EncodeToString(sum[:16]))
	var had []string
	if v, ok, err := tx.Get(key); err != nil {
		return nil, nil, err
	} else if ok {
		if err := json.Unmarshal(v, &had); err != nil {
			return nil, nil, err
		}
	}
	if !slices.Contains(had, owner) {
		had = append(had, owner)
	}
	return had, key, nil
}

func setJSON(tx *mailbox.Tx, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Set(key, b)
}

// resent prepends the RFC 5322 3.6.6 resent fields to the original bytes.
func (s *Service) resent(raw []byte, from string, to []string) ([]byte, string, string) {
	var b [12]byte
	rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	msgID := "<fw." + nonce + "@" + s.opts.Addresses.Primary() + ">"
	hdr := "Resent-From: " + from + "\r\n" +
		"Resent-To: " + strings.Join(to, ", ") + "\r\n" +
		"Resent-Date: " + s.now().Format(time.RFC1123Z) + "\r\n" +
		"Resent-Message-ID: " + msgID + "\r\n"
	out := make([]byte, 0, len(hdr)+len(raw))
	out = append(out, hdr...)
	return append(out, raw...), msgID, nonce
}

// countShards is how many keys the forward count is spread over: every
// forward adds to it, and with one key any two forwards on different
// nodes of one database would conflict on it.
const countShards = 16

// count adds n to the number of forwards, in one of countShards keys
// (x/fw/count/<shard>) picked at random; a store of before keeps its
// total in x/fw/count, which Forwards adds in.
func (s *Service) count(tx *mailbox.Tx, n int) error {
	key := fmt.Appendf(nil, "%scount/%02d", keyspace.Forwarding, mrand.IntN(countShards))
	var c uint64
	if v, ok, err := tx.Get(key); err != nil {
		return err
	} else if ok {
		c, _ = strconv.ParseUint(string(v), 10, 64)
	}
	return tx.Set(key, []byte(strconv.FormatUint(c+uint64(n), 10)))
}

// Forwards is how many forwards have been done.
func (s *Service) Forwards() (uint64, error) {
	var c uint64
	err := s.store.View(func(tx *mailbox.Tx) error {
		// x/fw/count itself (the total before the shards) and
		// x/fw/count/<shard>.
		return tx.Scan([]byte(keyspace.Forwarding+"count"), func(_, v []byte) error {
			n, _ := strconv.ParseUint(string(v), 10, 64)
			c += n
			return nil
		})
	})
	return c, err
}

// Forward is an audit record of one forward.
type Forward struct {
	Time            time.Time `json:"time"`
	Account         string    `json:"account"`
	Mailbox         string    `json:"mailbox"`
	UID             uint32    `json:"uid"`
	To              []string  `json:"to"`
	Actor           string    `json:"actor"`
	ResentMessageID string    `json:"resent_message_id,omitempty"`
}

func (s *Service) audit(tx *mailbox.Tx, f Forward) error {
	var nonce [4]byte
	rand.Read(nonce[:])
	return setJSON(tx, []byte(fmt.Sprintf(keyspace.Forwarding+"audit/%020d-%x", f.Time.UnixNano(), nonce)), f)
}

// Audit lists the forward audit records, oldest first.
func (s *Service) Audit() ([]Forward, error) {
	var out []Forward
	err := s.store.View(func(tx *mailbox.Tx) error {
		return tx.Scan([]byte(keyspace.Forwarding+"audit/"), func(_, v []byte) error {
			var f Forward
			if err := json.Unmarshal(v, &f); err != nil {
				return err
			}
			out = append(out, f)
			return nil
		})
	})
	return out, err
}

var _ kv.Records = (*mailbox.Tx)(nil)
