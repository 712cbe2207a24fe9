// Package addressing owns one rule: which local account an address is.
// Delivery (LMTP recipients), certified mail (originator-specified
// alternates, forwarding a stub) and auto-forward (a policy's targets) all
// ask the same Resolver, built once from the configuration, so that they
// cannot disagree about whether carol@partner.example is the local account
// carol or somebody else's carol.
//
// The rule:
//
//   - A bare name ("carol") is a local account name.
//   - user@domain is local when domain is one of the served domains
//     (config `domains`), compared without regard to case or a trailing
//     dot (RFC 5321 section 2.4: domain names are case-insensitive). With
//     no domains configured, the gateway's own name is the one local
//     domain for routing; final delivery (LMTP) then takes any domain,
//     since the MTA in front already decided the mail is ours.
//   - A domain listed as an alternate domain (config
//     `certified.alternate_domains`) is external, always: it is where
//     somebody else's accounts live.
//   - The local part of a local address is turned into an account name by
//     the store's own normalisation (mailbox.NormalizeAccount: trimmed,
//     lower-case, a plain alphabet); there is no +detail handling. Local
//     parts are case-sensitive in principle (RFC 5321 section 2.4), but
//     account names are not, and the store decides what an account is.
package addressing

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"certmail/mailbox"
)

var (
	// ErrBadAddress: not an address at all (empty, or an empty local part
	// or domain).
	ErrBadAddress = errors.New("bad address")
	// ErrNotLocal: the address is in a domain this gateway does not serve.
	ErrNotLocal = errors.New("domain not served here")
	// ErrNoAccount: the address is local, but no account has that name
	// (or none could: the local part is not an account name).
	ErrNoAccount = errors.New("no such local account")
)

// Options say which domains are local.
type Options struct {
	// Domains are the mail domains served (config `domains`). The first
	// is the primary one, in which local accounts' addresses are written.
	Domains []string
	// Hostname is the gateway's name: the local domain when Domains is
	// empty.
	Hostname string
	// AlternateDomains are external domains where an originator-specified
	// alternate may be (config `certified.alternate_domains`). They are
	// never local.
	AlternateDomains []string
}

// Resolver applies the rule. It is immutable and safe for concurrent use.
type Resolver struct {
	domains   []string // served, canonical; empty: any (final delivery only)
	primary   string
	alternate []string
}

// New returns the resolver for o.
func New(o Options) *Resolver {
	r := &Resolver{}
	for _, d := range o.Domains {
		if d = canonicalDomain(d); d != "" && !slices.Contains(r.domains, d) {
			r.domains = append(r.domains, d)
		}
	}
	for _, d := range o.AlternateDomains {
		if d = canonicalDomain(d); d != "" && !slices.Contains(r.alternate, d) {
			r.alternate = append(r.alternate, d)
		}
	}
	switch {
	case len(r.domains) > 0:
		r.primary = r.domains[0]
	default:
		r.primary = canonicalDomain(o.Hostname)
	}
	if r.primary == "" {
		r.primary = "localhost"
	}
	return r
}

func canonicalDomain(d string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
}

// Primary is the domain local accounts' addresses are written in.
func (r *Resolver) Primary() string { return r.primary }

// AddressOf is the address of a local account: acct@primary.
func (r *Resolver) AddressOf(acct string) string { return acct + "@" + r.primary }

// Address is what the resolver made of an address.
type Address struct {
	// Account is the local account the address names; empty for an
	// external address.
	Account string
	// Addr is the address to write: the account's address in the primary
	// domain for a local one, the full address with its domain in lower
	// case for an external one.
	Addr string
	// Domain is the address's domain in lower case, empty for a bare
	// name.
	Domain string
}

// Local reports whether the address is a local account's.
func (a Address) Local() bool { return a.Account != "" }

// Route classifies addr for sending something to it (an alternate, a
// forward): a local account, or an external address. It looks up no
// account; an address in a local domain whose local part no account can
// have fails with ErrNoAccount.
func (r *Resolver) Route(addr string) (Address, error) {
	return r.classify(addr, false)
}

// Recipient classifies addr as an LMTP recipient: as Route, but with no
// domains configured any domain other than an alternate one is local
// (the MTA in front routed it here), and an external address fails with
// ErrNotLocal.
func (r *Resolver) Recipient(addr string) (Address, error) {
	a, err := r.classify(addr, len(r.domains) == 0)
	if err == nil && !a.Local() {
		return Address{}, fmt.Errorf("<%s>: %w", addr, ErrNotLocal)
	}
	return a, err
}

// Login turns the name a user logs in with (IMAP LOGIN and AUTHENTICATE,
// HTTP Basic auth) into the account it names: a bare account name, or
// the account's address in any served domain (what mail clients send:
// "alice@Example.org" is alice). An address in any other domain is
// ErrNotLocal, never the local account of the same local part: the
// carol of partner.example is somebody else. The domain rule is final
// delivery's (Recipient): what LMTP delivers to alice, alice logs in
// with, so with no domains configured any domain but an alternate one
// names the local account, as the mail for it arrives here.
func (r *Resolver) Login(name string) (string, error) {
	a, err := r.classify(name, len(r.domains) == 0)
	if err != nil {
		return "", err
	}
	if !a.Local() {
		return "", fmt.Errorf("<%s>: %w", name, ErrNotLocal)
	}
	return a.Account, nil
}

func (r *Resolver) classify(addr string, anyDomain bool) (Address, error) {
	addr = strings.TrimSpace(addr)
	local, domain, hasAt := addr, "", false
	// The last @: a quoted local part may hold one (RFC 5321 section
	// 4.1.2); no account name does, so such a local part is no account.
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local, domain, hasAt = addr[:i], canonicalDomain(addr[i+1:]), true
	}
	if local == "" || hasAt && domain == "" {
		return Address{}, fmt.Errorf("<%s>: %w", addr, ErrBadAddress)
	}
	if hasAt && !r.isLocalDomain(domain, anyDomain) {
		return Address{Addr: local + "@" + domain, Domain: domain}, nil
	}
	acct, err := mailbox.NormalizeAccount(local)
	if err != nil {
		return Address{}, fmt.Errorf("<%s>: %w: %q is not an account name", addr, ErrNoAccount, local)
	}
	return Address{Account: acct, Addr: r.AddressOf(acct), Domain: domain}, nil
}

func (r *Resolver) isLocalDomain(d string, anyDomain bool) bool {
	switch {
	case slices.Contains(r.alternate, d):
		return false
	case slices.Contains(r.domains, d):
		return true
	case len(r.domains) == 0:
		return anyDomain || d == r.primary
	}
	return false
}

// IsAlternateDomain reports whether an external address's domain is one
// where an originator-specified alternate may be.
func (r *Resolver) IsAlternateDomain(domain string) bool {
	return slices.Contains(r.alternate, canonicalDomain(domain))
}

// Accounts is what the resolver needs to know of the store: whether an
// account exists (a *mailbox.Store, or a *mailbox.Tx inside a
// transaction).
type Accounts interface {
	AccountExists(acct string) (bool, error)
}

// Resolve is Route followed by a look-up: a local address whose account
// does not exist fails with ErrNoAccount; an external one is returned as
// it is.
func (r *Resolver) Resolve(accts Accounts, addr string) (Address, error) {
	a, err := r.Route(addr)
	if err != nil || !a.Local() {
		return a, err
	}
	return a, exists(accts, addr, a)
}

// ResolveRecipient is Recipient followed by a look-up of the account.
func (r *Resolver) ResolveRecipient(accts Accounts, addr string) (Address, error) {
	a, err := r.Recipient(addr)
	if err != nil {
		return a, err
	}
	return a, exists(accts, addr, a)
}

func exists(accts Accounts, addr string, a Address) error {
	ok, err := accts.AccountExists(a.Account)
	if err != nil {
		return fmt.Errorf("<%s>: looking up account %s: %w", addr, a.Account, err)
	}
	if !ok {
		return fmt.Errorf("<%s>: %w", addr, ErrNoAccount)
	}
	return nil
}
