// Package authguard is the one place where a password is checked: every
// way to authenticate (IMAP LOGIN and AUTHENTICATE, HTTP Basic auth on the
// API, the admin socket's password change) goes through one Guard, which
// counts failures per account and per remote address and refuses, without
// looking at the password, an account or address that has failed too
// often. Locked is locked everywhere: guesses over HTTP lock IMAP and the
// other way round.
//
// A login name is the account name or the account's address in a served
// domain (Policy.Addresses, the resolver delivery uses), and accounts are
// counted under the store's own canonical name, so " bob", "BOB",
// "bob\t" and "Bob@Example.org" share bob's budget; names that cannot be
// a local account (bob@elsewhere.example among them) are refused without
// a password check and counted by address only.
// Addresses are counted per IPv4 address and per IPv6 /64, the block one
// subscriber gets. Both tables are bounded (Policy.MaxEntries).
package authguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"certmail/addressing"
	"certmail/kv"
	"certmail/metrics"
)

// Policy says how failures are answered. The zero value counts nothing
// and delays nothing.
type Policy struct {
	// FreeFailures (per address and per account) are answered at once;
	// each further one is answered after Delay, doubling, at most
	// MaxDelay.
	FreeFailures int
	// MaxFailures locks the account or address: authentication is
	// refused, the password not checked, until Lockout has passed since
	// the last failure. 0: no limit.
	MaxFailures int
	Delay       time.Duration
	// Lockout is also how long failures are remembered (default 15m).
	Lockout time.Duration
	// LoopbackExempt leaves loopback clients (a webmail or proxy on this
	// host, whose users all share its address) out of the per-address
	// count; their accounts are still counted.
	LoopbackExempt bool
	// MaxEntries bounds each table (accounts, addresses); 0:
	// DefaultMaxEntries.
	MaxEntries int
	// Addresses turns a login name into an account (Resolver.Login): a
	// bare name, or an address in a served domain. nil: bare names and
	// addresses at localhost only.
	Addresses *addressing.Resolver
	// Metrics, if set, counts every attempt by protocol and result.
	Metrics *metrics.Metrics
	// Shared, if set, keeps the failure counts in the store as well, so
	// that every process sharing it (nodes on one PostgreSQL database:
	// mailbox.Store.Records when the store is Shared) counts against one
	// budget (shared.go). nil: each process counts its own, in memory.
	Shared kv.RecordStore
}

const (
	// DefaultMaxEntries bounds each failure table: about 200 bytes an
	// entry, 2 MB a table.
	DefaultMaxEntries = 10000
	// MaxDelay caps the delay of one answer: a slow refusal, not a hung
	// connection.
	MaxDelay = 30 * time.Second
	// maxLogName bounds the name a log line repeats (an IMAP literal can
	// hold 48 kB of "name").
	maxLogName = 128
)

// Checker checks a password and returns the canonical account name;
// *mailbox.Store is one.
type Checker interface {
	Authenticate(name, password string) (string, error)
}

// ErrFailed is what every refusal is (errors.Is): a wrong password, an
// unknown account, a malformed attempt and a lockout look alike to the
// client, so that nothing tells whether an account exists.
var ErrFailed = errors.New("authentication failed")

// Error is a refused authentication.
type Error struct {
	// RetryIn is set when the account or the address is locked: no
	// password is checked until then.
	RetryIn time.Duration
}

func (e *Error) Error() string {
	if e.RetryIn > 0 {
		secs := int((e.RetryIn + time.Second - 1) / time.Second)
		return fmt.Sprintf("too many failed logins, try again in %ds", secs)
	}
	return ErrFailed.Error()
}

func (e *Error) Is(target error) bool { return target == ErrFailed }

// Attempt is one client's try at authenticating.
type Attempt struct {
	// Proto names the way in, for the log: "imap", "http", "admin".
	Proto string
	// Remote is the client's address as net.Addr.String() gives it
	// ("192.0.2.1:4321", "[2001:db8::1]:4321"), or "" when there is none
	// (the admin socket).
	Remote string
	// Name is the account name as the client sent it.
	Name string
}

// Guard counts failures. It is safe for concurrent use.
type Guard struct {
	check Checker
	pol   Policy
	log   *slog.Logger
	now   func() time.Time

	mu           sync.Mutex
	accts, addrs *table
	// ended is closed (and replaced) whenever an attempt in flight ends,
	// waking the attempts that wait for their turn.
	ended chan struct{}
	// swept is when this guard last deleted expired shared records;
	// sweepBatch, if set, replaces the batch size (tests).
	swept      time.Time
	sweepBatch int
}

// maxTurnWait bounds how long an attempt waits for others in flight on
// the same account or address before it is refused.
const maxTurnWait = 30 * time.Second

// New returns a guard that checks passwords with c.
func New(c Checker, p Policy, log *slog.Logger) *Guard {
	if p.Lockout <= 0 {
		p.Lockout = 15 * time.Minute
	}
	if p.MaxEntries <= 0 {
		p.MaxEntries = DefaultMaxEntries
	}
	if log == nil {
		log = slog.Default()
	}
	if p.Addresses == nil {
		p.Addresses = addressing.New(addressing.Options{})
	}
	g := &Guard{check: c, pol: p, log: log, now: time.Now,
		accts: newTable(p.MaxEntries), addrs: newTable(p.MaxEntries), ended: make(chan struct{})}
	g.swept = g.now()
	return g
}

// unavailable is the refusal of an attempt whose shared failure counts
// could not be read (the database down): no password is checked.
func (g *Guard) unavailable(a Attempt, err error) error {
	g.log.Warn("login refused: failure counts unavailable", "proto", a.Proto, "user", logName(a.Name), "remote", a.Remote, "err", err)
	g.pol.Metrics.Login(a.Proto, metrics.LoginFailed)
	return &Error{}
}

// Authenticate checks a's password, unless a's account or address is
// locked, and returns the canonical account name. A failure is answered
// after the policy's delay (or when ctx ends); every refusal is an *Error.
func (g *Guard) Authenticate(ctx context.Context, a Attempt, password string) (string, error) {
	acctKey, addrKey := g.keys(a)
	if err := g.load(acctKey, addrKey); err != nil {
		return "", g.unavailable(a, err)
	}
	g.mu.Lock()
	now, refusal := g.awaitTurn(ctx, acctKey, addrKey)
	if refusal != nil {
		g.mu.Unlock()
		g.log.Warn("login refused: too many failed logins", "proto", a.Proto, "user", logName(a.Name), "remote", a.Remote,
			"retry_in", refusal.RetryIn.Round(time.Second).String())
		g.pol.Metrics.Login(a.Proto, metrics.LoginLocked)
		return "", refusal
	}
	// Counted while in flight, so that parallel guesses cannot all pass
	// the check above before the first failure is recorded: at most
	// MaxFailures passwords are ever checked per lockout.
	ea := g.accts.begin(acctKey, now, g.pol.Lockout)
	en := g.addrs.begin(addrKey, now, g.pol.Lockout)
	g.mu.Unlock()

	if acctKey == "" {
		// Not a local account's name: no password to check, and no
		// account's budget to spend (alice@elsewhere.example must not
		// lock out alice).
		return "", g.failed(ctx, a, acctKey, ea, addrKey, en, "not a local account")
	}
	// The canonical name, not what was typed: the store knows accounts,
	// not addresses.
	acct, err := g.check.Authenticate(acctKey, password)
	if err == nil {
		g.succeeded(acctKey, ea, addrKey, en)
		g.pol.Metrics.Login(a.Proto, metrics.LoginOK)
		return acct, nil
	}
	return "", g.failed(ctx, a, acctKey, ea, addrKey, en, "wrong password or no such account")
}

// awaitTurn returns, with g.mu held as on entry, once an attempt for
// acctKey and addrKey may begin, or the refusal. While the attempts in
// flight could still spend the whole failure budget, it waits for one of
// them to end instead of refusing: ten clients of one account logging in
// at once with the right password all get in, one after another, and
// parallel guesses still check at most MaxFailures passwords.
func (g *Guard) awaitTurn(ctx context.Context, acctKey, addrKey string) (time.Time, *Error) {
	var deadline <-chan time.Time
	for {
		now := g.now()
		if wait := g.lockedFor(acctKey, addrKey, now); wait > 0 {
			return now, &Error{RetryIn: wait}
		}
		if !g.busy(acctKey, addrKey, now) {
			return now, nil
		}
		if deadline == nil {
			t := time.NewTimer(maxTurnWait)
			defer t.Stop()
			deadline = t.C
		}
		ended := g.ended
		g.mu.Unlock()
		var refused bool
		select {
		case <-ended:
		case <-deadline:
			refused = true
		case <-ctx.Done():
			refused = true
		}
		g.mu.Lock()
		if refused {
			return now, &Error{RetryIn: max(g.pol.Delay, time.Second)}
		}
	}
}

// attemptEnded wakes the attempts waiting for their turn. g.mu is held.
func (g *Guard) attemptEnded() {
	close(g.ended)
	g.ended = make(chan struct{})
}

// Fail counts an attempt that was refused before any password could be
// checked (a malformed AUTHENTICATE, an HTTP Authorization header that is
// not Basic auth): as many of them are as costly to the guesser as wrong
// passwords. It is answered after the same delay; the error is an *Error.
func (g *Guard) Fail(ctx context.Context, a Attempt, reason string) error {
	acctKey, addrKey := g.keys(a)
	if err := g.load(acctKey, addrKey); err != nil {
		return g.unavailable(a, err)
	}
	g.mu.Lock()
	now := g.now()
	wait := g.lockedFor(acctKey, addrKey, now)
	if wait == 0 && g.busy(acctKey, addrKey, now) {
		// Not worth waiting for: nothing here can succeed.
		wait = max(g.pol.Delay, time.Second)
	}
	var ea, en *entry
	if wait == 0 {
		ea = g.accts.begin(acctKey, now, g.pol.Lockout)
		en = g.addrs.begin(addrKey, now, g.pol.Lockout)
	}
	g.mu.Unlock()
	if wait > 0 {
		g.log.Warn("login refused: too many failed logins", "proto", a.Proto, "user", logName(a.Name), "remote", a.Remote,
			"retry_in", wait.Round(time.Second).String(), "reason", reason)
		g.pol.Metrics.Login(a.Proto, metrics.LoginLocked)
		return &Error{RetryIn: wait}
	}
	return g.failed(ctx, a, acctKey, ea, addrKey, en, reason)
}

// failed records a failure begun with begin, logs it, waits the delay and
// returns the client's answer.
func (g *Guard) failed(ctx context.Context, a Attempt, acctKey string, ea *entry, addrKey string, en *entry, reason string) error {
	now := g.now()
	acct, addr := sharedCount{n: -1}, sharedCount{n: -1}
	if g.pol.Shared != nil {
		var err error
		if acct, addr, err = g.record(acctKey, addrKey, now); err != nil {
			// Counted here only: the database is down, and logins with
			// it (load fails closed).
			g.log.Warn("failed login not recorded in the store", "proto", a.Proto, "user", logName(a.Name), "remote", a.Remote, "err", err)
		}
	}
	g.mu.Lock()
	failures := max(g.accts.fail(acctKey, ea, now, g.pol, acct), g.addrs.fail(addrKey, en, now, g.pol, addr))
	g.attemptEnded()
	g.mu.Unlock()
	if g.pol.Shared != nil {
		g.sweep(now)
	}
	delay := g.delay(failures)
	g.pol.Metrics.Login(a.Proto, metrics.LoginFailed)
	g.log.Info("login failed", "proto", a.Proto, "user", logName(a.Name), "remote", a.Remote, "reason", reason,
		"failures", failures, "delay", delay.String())
	var lockout time.Duration
	if g.pol.MaxFailures > 0 && failures >= g.pol.MaxFailures {
		lockout = g.pol.Lockout
		g.log.Warn("login locked out: too many failed logins", "proto", a.Proto, "user", logName(a.Name), "remote", a.Remote,
			"reason", reason, "failures", failures, "lockout", lockout.String())
	}
	// The answer is slowed, not the server: only this client waits, and
	// it cannot try again on this connection until it is answered.
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	return &Error{RetryIn: lockout}
}

// succeeded forgets the account's failures: whoever knows the password is
// not to be slowed by earlier typos. The address is forgiven only as many
// failures as the account had, so that an attacker cannot clear the count
// of an address that guesses at many accounts by logging in to their own.
// With shared records, those are forgiven too when the account has
// failures on record (a correct login without writes nothing).
func (g *Guard) succeeded(acctKey string, ea *entry, addrKey string, en *entry) {
	g.mu.Lock()
	had := ea != nil && g.accts.m[acctKey] == ea && ea.n > 0
	g.mu.Unlock()
	forgiven := -1
	if g.pol.Shared != nil && had {
		var err error
		if forgiven, err = g.forgive(acctKey, addrKey, g.now()); err != nil {
			g.log.Warn("failures not forgiven in the store", "user", logName(acctKey), "err", err)
			forgiven = 0
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.accts.succeed(acctKey, ea, -1, g.pol)
	if forgiven < 0 {
		forgiven = n
	}
	g.addrs.succeed(addrKey, en, forgiven, g.pol)
	g.attemptEnded()
}

// lockedFor says how long acctKey or addrKey stay refused (zero: not).
func (g *Guard) lockedFor(acctKey, addrKey string, now time.Time) time.Duration {
	if g.pol.MaxFailures <= 0 {
		return 0
	}
	return max(g.accts.lockedFor(acctKey, now, g.pol), g.addrs.lockedFor(addrKey, now, g.pol))
}

// busy says whether the attempts in flight for acctKey or addrKey could
// still spend the rest of its failure budget.
func (g *Guard) busy(acctKey, addrKey string, now time.Time) bool {
	if g.pol.MaxFailures <= 0 {
		return false
	}
	return g.accts.busy(acctKey, now, g.pol) || g.addrs.busy(addrKey, now, g.pol)
}

// delay is the wait before answering the failures-th failure: none for
// the first FreeFailures, then Delay, doubling, at most MaxDelay.
func (g *Guard) delay(failures int) time.Duration {
	n := failures - g.pol.FreeFailures
	if n <= 0 || g.pol.Delay <= 0 || g.pol.MaxFailures <= 0 {
		return 0
	}
	d := g.pol.Delay
	for i := 1; i < n && d < MaxDelay; i++ {
		d *= 2
	}
	return min(d, MaxDelay)
}

// keys are the table keys of a: the canonical account ("" for a name
// that cannot be a local one) and the address block ("" for none, or an
// exempt loopback client).
func (g *Guard) keys(a Attempt) (acct, addr string) {
	acct, err := g.pol.Addresses.Login(a.Name)
	if err != nil {
		acct = ""
	}
	return acct, g.addrKey(a.Remote)
}

// Account is the local account a login name names (the bare name or its
// address in a served domain), the name the guard counts and checks;
// an error for a name that is no local account's. For callers that must
// compare names (an authorization identity with the login's) by the
// guard's rule.
func (g *Guard) Account(name string) (string, error) {
	return g.pol.Addresses.Login(name)
}

// addrKey is the block remote is counted in: the IPv4 address, or the
// IPv6 /64 (one subscriber's prefix: counting single IPv6 addresses would
// give each guesser 2^64 budgets).
func (g *Guard) addrKey(remote string) string {
	if remote == "" {
		return ""
	}
	ip, err := netip.ParseAddr(remote)
	if ap, perr := netip.ParseAddrPort(remote); perr == nil {
		ip, err = ap.Addr(), nil
	}
	if err != nil {
		// Not an IP (a Unix socket's name): one bucket for all of it.
		return "?" + truncate(remote, maxLogName)
	}
	ip = ip.Unmap().WithZone("")
	if g.pol.LoopbackExempt && ip.IsLoopback() {
		return ""
	}
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

// Entries returns the sizes of the account and address tables.
func (g *Guard) Entries() (accounts, addresses int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.accts.m), len(g.addrs.m)
}

func logName(name string) string { return truncate(name, maxLogName) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
