package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is certmail's configuration. The zero value is not useful; start
// from Default and decode a file over it, so that keys the file leaves out
// keep their defaults while a key set to "" (a listener) means "off".
type Config struct {
	// Data is the data directory (the Badger store and the admin socket).
	Data string `toml:"data"`
	// Hostname is the gateway's name, used in LMTP greetings and
	// evidence.
	Hostname string `toml:"hostname"`
	// Domains are the mail domains served. Empty accepts any domain.
	Domains []string `toml:"domains"`
	// AllowInsecureAuth permits password authentication without TLS from
	// non-loopback addresses.
	AllowInsecureAuth bool `toml:"allow_insecure_auth"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// ShutdownTimeout bounds how long in-flight commands may run after
	// SIGINT/SIGTERM before connections are cut.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// EncryptionKeyFile names a file holding the 32-byte key that encrypts
	// the store at rest (raw, hex or base64). Empty: not encrypted.
	EncryptionKeyFile string `toml:"encryption_key_file"`

	Listen    Listen    `toml:"listen"`
	TLS       TLS       `toml:"tls"`
	Limits    Limits    `toml:"limits"`
	HTTP      HTTP      `toml:"http"`
	Metrics   Metrics   `toml:"metrics"`
	Certified Certified `toml:"certified"`
	Relay     Relay     `toml:"relay"`
	Webhooks  []Webhook `toml:"webhook"`
	// Forward are auto-forward policies (in addition to those set with
	// `certmail policy set`).
	Forward []ForwardPolicy `toml:"forward"`
	Alerts  Alerts          `toml:"alerts"`
	// Autoconfig is what the Thunderbird autoconfig document says (ops).
	Autoconfig Autoconfig `toml:"autoconfig"`
	// Store is where the store lives: the data directory (the default),
	// or a PostgreSQL database shared by several nodes (store.go).
	Store Store `toml:"store"`
	// Node names this node among several on one database (logs, and
	// PostgreSQL's application_name); empty: the machine's host name.
	Node string `toml:"node"`
	// Metadata gives the server's read-only METADATA entries.
	Metadata Metadata `toml:"metadata"`
}

// Metadata are the server annotations (RFC 5464 section 3.2.1) every
// account reads and none may write; empty ones are not there.
type Metadata struct {
	// Admin is /shared/admin: a URI to reach the administrator, such as
	// mailto:postmaster@example.org (Delta Chat shows it).
	Admin string `toml:"admin"`
	// Comment is /shared/comment: a note about the server.
	Comment string `toml:"comment"`
}

// Autoconfig describes the servers a mail client should use, for the
// Thunderbird autoconfig document served on the HTTP listener. Empty
// fields are derived from the rest of the configuration.
type Autoconfig struct {
	// IMAPHost is the public name of the IMAP server (default: the host
	// the client asked for the document, less "autoconfig.").
	IMAPHost string `toml:"imap_host"`
	// IMAPPort is its public port (default: the port of listen.imaps if
	// set, else of listen.imap).
	IMAPPort int `toml:"imap_port"`
	// IMAPSocketType is SSL, STARTTLS or plain (default: SSL with
	// listen.imaps, STARTTLS with [tls], else plain).
	IMAPSocketType string `toml:"imap_socket_type"`
	// SMTPHost is the submission server; empty: the IMAP host (the
	// document always names one: Thunderbird refuses it without).
	SMTPHost       string `toml:"smtp_host"`
	SMTPPort       int    `toml:"smtp_port"`
	SMTPSocketType string `toml:"smtp_socket_type"`
	// DisplayName is the provider's name shown by the client.
	DisplayName string `toml:"display_name"`
}

// ForwardPolicy forwards what stays unread in an account's mailbox.
type ForwardPolicy struct {
	Account       string   `toml:"account"`
	Mailbox       string   `toml:"mailbox"`
	After         Duration `toml:"after"`
	To            []string `toml:"to"`
	CertifiedOnly bool     `toml:"certified_only"`
}

// Alerts tell operators about mail unread too long, once per message.
type Alerts struct {
	// After is how long unread before an alert; zero: no alerts.
	After Duration `toml:"after"`
	// To are the operators' addresses (through the relay); webhooks get
	// alerts too.
	To []string `toml:"to"`
}

// Relay is the SMTP relay for notices.
type Relay struct {
	Addr     string `toml:"addr"`
	TLS      string `toml:"tls"` // "starttls", "tls" or "none"
	Username string `toml:"username"`
	Password string `toml:"password"`
	From     string `toml:"from"`
	// RetryAfter is the wait after a failed send, doubling after each
	// failure; MaxAttempts the failures after which a notice is kept as a
	// dead letter.
	RetryAfter  Duration `toml:"retry_after"`
	MaxAttempts int      `toml:"max_attempts"`
}

// Webhook is a URL notices are POSTed to, signed with Secret.
type Webhook struct {
	URL    string `toml:"url"`
	Secret string `toml:"secret"`
}

// Certified holds the defaults of certified items and the operator rules
// that make mail certified without a Certified-Delivery header.
type Certified struct {
	// Deadline is the default time a recipient has to acknowledge.
	Deadline Duration `toml:"deadline"`
	// OnExpiry is "non-delivery" or "deemed-delivery".
	OnExpiry string `toml:"on_expiry"`
	// Reveal is "none", "sender" or "sender-subject": what a stub shows.
	Reveal string `toml:"reveal"`
	// AlternateDomains are the domains an originator-specified alternate
	// may be in, besides local accounts.
	AlternateDomains []string `toml:"alternate_domains"`
	// Rules make mail certified by recipient account and sender address.
	Rules []CertifiedRule `toml:"rule"`
	// TrustedLMTPClients are the LMTP clients (IP addresses or CIDR
	// prefixes) whose envelope senders are authenticated: a submission
	// MTA that relays only its logged-in users' mail under their own
	// address. Only their senders (and API tokens' configured senders)
	// are mailed certified notices. Empty: no LMTP sender is.
	TrustedLMTPClients []string `toml:"trusted_lmtp_clients"`
}

// TrustedLMTPPrefixes are TrustedLMTPClients parsed; a bare address is a
// prefix of its full length.
func (c Certified) TrustedLMTPPrefixes() ([]netip.Prefix, error) {
	return parsePrefixes(c.TrustedLMTPClients)
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("entry %d (%q): %w", i+1, s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not an IP address or CIDR prefix")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errors.New("not an IP address or CIDR prefix")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// CertifiedRule matches mail to certify (path.Match patterns, empty
// matches all).
type CertifiedRule struct {
	Recipient string `toml:"recipient"`
	Sender    string `toml:"sender"`
}

// Listen holds listener addresses; an empty address disables a listener.
// Port 0 picks a free port (the bound address is logged).
type Listen struct {
	IMAP  string `toml:"imap"`
	IMAPS string `toml:"imaps"`
	LMTP  string `toml:"lmtp"`
	HTTP  string `toml:"http"`
	// Metrics serves Prometheus /metrics, and nothing else: unread counts
	// and ages are the operator's business, not the API clients'. Off by
	// default; loopback (127.0.0.1:9180) is the address to give it unless
	// a scraper elsewhere needs it.
	Metrics string `toml:"metrics"`
	// ProxyProtocolFrom are the TCP proxies in front of this node (IP
	// addresses or CIDR prefixes) that start each connection with a PROXY
	// protocol header naming the client (HAProxy's send-proxy-v2). On
	// every listener a connection from one of them must have the header,
	// and is the client it names: per-address limits, failed-login counts,
	// trusted LMTP clients and logs see the client, not the proxy.
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`
}

// ProxyPrefixes are ProxyProtocolFrom parsed; a bare address is a prefix
// of its full length.
func (l Listen) ProxyPrefixes() ([]netip.Prefix, error) { return parsePrefixes(l.ProxyProtocolFrom) }

// HTTP bounds how long one HTTP client may hold a connection, so that
// idle keep-alives and trickled requests give their descriptors back.
// The per-address connection cap is limits.max_connections_per_ip.
type HTTP struct {
	// ReadHeaderTimeout bounds reading a request's header.
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included (a
	// submission of max_message_size over a slow link must fit in it).
	ReadTimeout Duration `toml:"read_timeout"`
	// WriteTimeout bounds the time from the end of the request header to
	// the end of the answer.
	WriteTimeout Duration `toml:"write_timeout"`
	// IdleTimeout bounds how long a keep-alive connection may wait for
	// its next request.
	IdleTimeout Duration `toml:"idle_timeout"`
}

// Metrics says what the metrics listener shows.
type Metrics struct {
	// PerMailbox labels unread counts and ages by account and mailbox;
	// off, they are summed over all mailboxes (the count) and the oldest
	// taken (the age), which tells nobody when one person reads.
	PerMailbox bool `toml:"per_mailbox"`
}

// TLS names the certificate and key files (PEM).
type TLS struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" }

// Limits bound what one client or message may cost.
type Limits struct {
	// MaxMessageSize is the largest message LMTP, deliver and APPEND
	// accept.
	MaxMessageSize ByteSize `toml:"max_message_size"`
	// MaxRecipients is the most recipients of one LMTP transaction.
	MaxRecipients int `toml:"max_recipients"`
	// MaxLMTPSessions bounds the LMTP connections open at once; one more
	// is answered 421 4.3.2 and closed (the MTA retries). 0: no limit.
	MaxLMTPSessions int `toml:"max_lmtp_sessions"`
	// MaxMailboxes is the most mailboxes one account may have.
	MaxMailboxes int `toml:"max_mailboxes"`
	// QuotaStorage (bytes) and QuotaMessages are the quota (RFC 9208) of
	// an account that has none of its own (`certmail user quota`); 0 is
	// no limit. What an account's messages take, and a certified item's
	// M held for it, counts; past a limit, APPEND and COPY get NO
	// [OVERQUOTA], LMTP 552 5.2.2, deliver exit 73.
	QuotaStorage  ByteSize `toml:"quota_storage"`
	QuotaMessages int64    `toml:"quota_messages"`
	// MetadataMaxEntrySize bounds one METADATA value (RFC 5464: NO
	// [METADATA MAXSIZE n] above it); MetadataMaxEntries and
	// MetadataMaxBytes bound an account's entries, server and mailbox
	// ones together, and the bytes of their names and values (NO
	// [METADATA TOOMANY]).
	MetadataMaxEntrySize ByteSize `toml:"metadata_max_entry_size"`
	MetadataMaxEntries   int      `toml:"metadata_max_entries"`
	MetadataMaxBytes     ByteSize `toml:"metadata_max_bytes"`
	// MaxConnectionsPerIP bounds the connections from one address, on
	// the IMAP listeners and on the HTTP listener each, and
	// MaxSessionsPerUser the logged-in sessions of one account; 0 is no
	// limit.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	MaxSessionsPerUser  int `toml:"max_sessions_per_user"`
	// LoopbackExempt leaves loopback clients (a local webmail or proxy,
	// whose users share one address) out of the per-address limits.
	LoopbackExempt bool `toml:"loopback_exempt"`
	// LoginFreeFailures are the failed logins (per address and per
	// account, over every protocol: authguard) answered without delay;
	// each further one waits LoginDelay, doubling; after
	// LoginMaxFailures, logins are refused for LoginLockout. Failures are
	// forgotten LoginLockout after the last.
	LoginFreeFailures int      `toml:"login_free_failures"`
	LoginMaxFailures  int      `toml:"login_max_failures"`
	LoginDelay        Duration `toml:"login_delay"`
	LoginLockout      Duration `toml:"login_lockout"`
	// IndexIdle is how long a mailbox's in-memory message index stays
	// loaded without being read (about 150 bytes a message).
	IndexIdle Duration `toml:"index_idle"`
	// MaxSearchKeys bounds the keys of one IMAP SEARCH (each can cost a
	// pass over every message); 0 is no limit. SearchTimeout stops a
	// SEARCH that runs longer; 0 is no limit.
	MaxSearchKeys int      `toml:"max_search_keys"`
	SearchTimeout Duration `toml:"search_timeout"`
	// DiskReserve is the free space on the data directory's filesystem
	// that new mail may not use: below it LMTP answers 452 4.3.1, APPEND
	// NO [OVERQUOTA], the API 507, until space returns. Half of it stays
	// free even for flag changes and evidence. 0 turns the check off.
	DiskReserve ByteSize `toml:"disk_reserve"`
}

// Defaults that other packages and the example file refer to.
const (
	DefaultData = "./certmail-data"
	// EnvData names the environment variable that sets the data
	// directory (below --data, above the file's data).
	EnvData                = "CERTMAIL_DATA"
	DefaultIMAP            = "127.0.0.1:1143"
	DefaultLMTP            = "127.0.0.1:2424"
	DefaultHTTP            = "127.0.0.1:8080"
	DefaultMaxMessageSize  = 50 << 20
	DefaultMaxRecipients   = 100
	DefaultMaxMailboxes    = 1000
	DefaultShutdownTimeout = 15 * time.Second
	// DefaultDiskReserve is mailbox.DefaultDiskReserve (config does not
	// import the store).
	DefaultDiskReserve     = 256 << 20
	DefaultMaxLMTPSessions = 100
	// Default METADATA limits (imapsrv.DefaultMetadata*; config does
	// not import the IMAP server).
	DefaultMetadataMaxEntrySize = 64 << 10
	DefaultMetadataMaxEntries   = 100
	DefaultMetadataMaxBytes     = 1 << 20

	// MaxMessageSizeCeiling is the largest max_message_size accepted: the
	// store keeps a message as one Badger value, which must be smaller
	// than a value-log file (128 MiB).
	MaxMessageSizeCeiling = 100 << 20
	// MaxMailboxesCeiling is the store's own per-account limit.
	MaxMailboxesCeiling = 1000
)

// Default returns the configuration used when no file is given.
func Default() *Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &Config{
		Data:            DefaultData,
		Hostname:        host,
		LogLevel:        "info",
		ShutdownTimeout: Duration(DefaultShutdownTimeout),
		Listen: Listen{
			IMAP: DefaultIMAP,
			LMTP: DefaultLMTP,
			HTTP: DefaultHTTP,
		},
		Store: Store{FollowInterval: Duration(500 * time.Millisecond), SoleLease: true},
		Limits: Limits{
			MaxMessageSize: DefaultMaxMessageSize,
			MaxRecipients:  DefaultMaxRecipients,
			// Postfix opens up to 20 LMTP connections to one destination
			// (default_destination_concurrency_limit).
			MaxLMTPSessions: DefaultMaxLMTPSessions,
			MaxMailboxes:    DefaultMaxMailboxes,
			// Abuse limits (ops): Thunderbird opens up to 5 connections
			// per account; a household behind one NAT address has a few.
			MaxConnectionsPerIP: 50,
			MaxSessionsPerUser:  20,
			LoopbackExempt:      true,
			LoginFreeFailures:   3,
			LoginMaxFailures:    10,
			LoginDelay:          Duration(time.Second),
			LoginLockout:        Duration(15 * time.Minute),
			IndexIdle:           Duration(10 * time.Minute),
			// A client's quick filter ORs a few fields per word: a
			// dozen keys. A SEARCH TEXT over 100,000 messages takes
			// about half a second.
			MaxSearchKeys: 100,
			SearchTimeout: Duration(time.Minute),
			DiskReserve:   DefaultDiskReserve,

			MetadataMaxEntrySize: DefaultMetadataMaxEntrySize,
			MetadataMaxEntries:   DefaultMetadataMaxEntries,
			MetadataMaxBytes:     DefaultMetadataMaxBytes,
		},
		HTTP: HTTP{
			ReadHeaderTimeout: Duration(10 * time.Second),
			// A 50 MiB submission is about 70 MB of base64: a minute at
			// 10 Mbit/s.
			ReadTimeout:  Duration(5 * time.Minute),
			WriteTimeout: Duration(5 * time.Minute),
			IdleTimeout:  Duration(time.Minute),
		},
		Autoconfig: Autoconfig{SMTPPort: 587, SMTPSocketType: "STARTTLS"},
		Relay:      Relay{TLS: "starttls", RetryAfter: Duration(time.Minute), MaxAttempts: 12},
		Certified: Certified{
			Deadline: Duration(72 * time.Hour),
			OnExpiry: "non-delivery",
			Reveal:   "sender",
		},
	}
}

// Error is a configuration error with where it was found.
type Error struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		fmt.Fprintf(&b, "%s: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads, decodes and validates the file at path over the defaults.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates data (named name in errors) over the
// defaults. Every problem found is reported, joined, not only the first.
func Parse(name string, data []byte) (*Config, error) {
	cfg := Default()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		return nil, &Error{File: name, Msg: err.Error()}
	}
	var errs []error
	// A misspelt key would otherwise be ignored and its default used,
	// which is how a server ends up listening where nobody expects.
	for _, k := range md.Undecoded() {
		errs = append(errs, &Error{File: name, Line: keyLine(data, k), Key: k.String(), Msg: "unknown key"})
	}
	for _, e := range cfg.check() {
		errs = append(errs, &Error{File: name, Line: keyLine(data, strings.Split(e.key, ".")), Key: e.key, Msg: e.msg})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.normalize()
	return cfg, nil
}

// Validate checks a configuration built in code or changed by flags.
func (c *Config) Validate() error {
	var errs []error
	for _, e := range c.check() {
		errs = append(errs, fmt.Errorf("%s: %s", e.key, e.msg))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.normalize()
	return nil
}

type problem struct{ key, msg string }

func (c *Config) check() []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(c.Data) == "" {
		add("data", "must name a directory")
	}
	if err := checkName(c.Hostname); err != nil {
		add("hostname", "%v", err)
	}
	for i, d := range c.Domains {
		if err := checkName(d); err != nil {
			add("domains", "entry %d (%q): %v", i+1, d, err)
		}
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		add("log_level", "%v", err)
	}
	if c.ShutdownTimeout < 0 {
		add("shutdown_timeout", "must not be negative")
	}
	for _, l := range []struct{ key, addr string }{
		{"listen.imap", c.Listen.IMAP},
		{"listen.imaps", c.Listen.IMAPS},
		{"listen.lmtp", c.Listen.LMTP},
		{"listen.http", c.Listen.HTTP},
		{"listen.metrics", c.Listen.Metrics},
	} {
		if err := checkAddr(l.addr); err != nil {
			add(l.key, "%v", err)
		}
	}
	if _, err := c.Listen.ProxyPrefixes(); err != nil {
		add("listen.proxy_protocol_from", "%v", err)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		add("tls", "cert and key must be given together")
	}
	if c.Listen.IMAPS != "" && !c.TLS.Enabled() {
		add("listen.imaps", "implicit TLS needs tls.cert and tls.key")
	}
	if c.Limits.MaxMessageSize <= 0 || c.Limits.MaxMessageSize > MaxMessageSizeCeiling {
		add("limits.max_message_size", "must be between 1 byte and %s", ByteSize(MaxMessageSizeCeiling))
	}
	if c.Limits.MaxRecipients < 1 || c.Limits.MaxRecipients > 10000 {
		add("limits.max_recipients", "must be between 1 and 10000")
	}
	if c.Limits.MaxLMTPSessions < 0 {
		add("limits.max_lmtp_sessions", "must not be negative (0: no limit)")
	}
	for _, t := range []struct {
		key string
		v   Duration
	}{
		{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout},
		{"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.write_timeout", c.HTTP.WriteTimeout},
		{"http.idle_timeout", c.HTTP.IdleTimeout},
	} {
		// No "0: none": a listener without timeouts is how idle clients
		// used up every descriptor.
		if t.v < Duration(100*time.Millisecond) || t.v > Duration(time.Hour) {
			add(t.key, "must be between 100ms and 1h")
		}
	}
	if c.Limits.MaxMailboxes < 1 || c.Limits.MaxMailboxes > MaxMailboxesCeiling {
		add("limits.max_mailboxes", "must be between 1 and %d", MaxMailboxesCeiling)
	}
	if c.Limits.QuotaStorage < 0 {
		add("limits.quota_storage", "must not be negative (0: no limit)")
	}
	if c.Limits.QuotaMessages < 0 {
		add("limits.quota_messages", "must not be negative (0: no limit)")
	}
	// Abuse limits and the rest of issue 7 (ops).
	if c.Limits.MaxConnectionsPerIP < 0 {
		add("limits.max_connections_per_ip", "must not be negative (0: no limit)")
	}
	if c.Limits.MaxSessionsPerUser < 0 {
		add("limits.max_sessions_per_user", "must not be negative (0: no limit)")
	}
	if c.Limits.LoginFreeFailures < 0 {
		add("limits.login_free_failures", "must not be negative")
	}
	if c.Limits.LoginMaxFailures < 1 || c.Limits.LoginMaxFailures <= c.Limits.LoginFreeFailures {
		add("limits.login_max_failures", "must be at least 1 and more than login_free_failures")
	}
	if c.Limits.LoginDelay < 0 || time.Duration(c.Limits.LoginDelay) > time.Minute {
		add("limits.login_delay", "must be between 0s and 1m")
	}
	if c.Limits.LoginLockout < Duration(time.Second) {
		add("limits.login_lockout", "must be at least 1s")
	}
	if c.Limits.IndexIdle < Duration(time.Second) {
		add("limits.index_idle", "must be at least 1s")
	}
	if c.Limits.MetadataMaxEntrySize < 1 {
		add("limits.metadata_max_entry_size", "must be at least 1 byte")
	}
	if c.Limits.MetadataMaxEntries < 1 {
		add("limits.metadata_max_entries", "must be at least 1")
	}
	if c.Limits.MetadataMaxBytes < c.Limits.MetadataMaxEntrySize {
		add("limits.metadata_max_bytes", "must be at least metadata_max_entry_size")
	}
	if a := c.Metadata.Admin; a != "" && !strings.Contains(a, ":") {
		add("metadata.admin", "must be a URI, such as mailto:postmaster@example.org")
	}
	if c.Limits.MaxSearchKeys < 0 {
		add("limits.max_search_keys", "must not be negative (0: no limit)")
	}
	if c.Limits.SearchTimeout < 0 {
		add("limits.search_timeout", "must not be negative (0: no limit)")
	}
	if c.Limits.DiskReserve < 0 {
		add("limits.disk_reserve", "must not be negative (0 turns the check off)")
	}
	if c.EncryptionKeyFile != "" {
		if _, err := ReadEncryptionKey(c.EncryptionKeyFile); err != nil {
			add("encryption_key_file", "%v", err)
		}
	}
	ps = append(ps, c.checkStore()...)
	for _, st := range []struct{ key, v string }{
		{"autoconfig.imap_socket_type", c.Autoconfig.IMAPSocketType},
		{"autoconfig.smtp_socket_type", c.Autoconfig.SMTPSocketType},
	} {
		switch st.v {
		case "", "SSL", "STARTTLS", "plain":
		default:
			add(st.key, "%q: want SSL, STARTTLS or plain", st.v)
		}
	}
	for _, p := range []struct {
		key string
		v   int
	}{{"autoconfig.imap_port", c.Autoconfig.IMAPPort}, {"autoconfig.smtp_port", c.Autoconfig.SMTPPort}} {
		if p.v < 0 || p.v > 65535 {
			add(p.key, "bad port %d", p.v)
		}
	}
	for _, h := range []struct{ key, v string }{
		{"autoconfig.imap_host", c.Autoconfig.IMAPHost},
		{"autoconfig.smtp_host", c.Autoconfig.SMTPHost},
	} {
		if h.v != "" && net.ParseIP(h.v) == nil {
			if err := checkName(h.v); err != nil {
				add(h.key, "%v", err)
			}
		}
	}
	if c.Certified.Deadline <= 0 || time.Duration(c.Certified.Deadline) > 366*24*time.Hour {
		add("certified.deadline", "must be between 1s and a year")
	}
	switch c.Certified.OnExpiry {
	case "non-delivery", "deemed-delivery":
	default:
		add("certified.on_expiry", "%q: want non-delivery or deemed-delivery", c.Certified.OnExpiry)
	}
	switch c.Certified.Reveal {
	case "none", "sender", "sender-subject":
	default:
		add("certified.reveal", "%q: want none, sender or sender-subject", c.Certified.Reveal)
	}
	if _, err := c.Certified.TrustedLMTPPrefixes(); err != nil {
		add("certified.trusted_lmtp_clients", "%v", err)
	}
	local := c.Domains
	if len(local) == 0 {
		local = []string{c.Hostname}
	}
	for i, d := range c.Certified.AlternateDomains {
		if err := checkName(d); err != nil {
			add("certified.alternate_domains", "entry %d (%q): %v", i+1, d, err)
		}
		// An alternate domain is someone else's: its addresses are never
		// local accounts. One that is also served here would be both.
		for _, l := range local {
			if strings.EqualFold(strings.TrimSuffix(d, "."), strings.TrimSuffix(l, ".")) {
				add("certified.alternate_domains", "entry %d (%q) is a domain served here (domains, or hostname when domains is empty); alternate domains are other people's", i+1, d)
			}
		}
	}
	if c.Relay.Addr != "" {
		if err := checkAddr(c.Relay.Addr); err != nil {
			add("relay.addr", "%v", err)
		}
	}
	for i, f := range c.Forward {
		if f.Account == "" || len(f.To) == 0 || f.After < Duration(time.Second) {
			add("forward", "entry %d: needs account, to and after (at least 1s)", i+1)
		}
	}
	if c.Alerts.After < 0 {
		add("alerts.after", "must not be negative")
	}
	if c.Relay.RetryAfter <= 0 {
		add("relay.retry_after", "must be positive")
	}
	if c.Relay.MaxAttempts < 1 || c.Relay.MaxAttempts > 100 {
		add("relay.max_attempts", "must be between 1 and 100")
	}
	switch c.Relay.TLS {
	case "starttls", "tls", "none":
	default:
		add("relay.tls", "%q: want starttls, tls or none", c.Relay.TLS)
	}
	for i, w := range c.Webhooks {
		if !strings.HasPrefix(w.URL, "https://") && !strings.HasPrefix(w.URL, "http://") {
			add("webhook", "entry %d: url %q must be http:// or https://", i+1, w.URL)
		}
		if len(w.Secret) < 16 {
			add("webhook", "entry %d: secret must be at least 16 characters", i+1)
		}
	}
	for i, r := range c.Certified.Rules {
		for _, p := range []string{r.Recipient, r.Sender} {
			if _, err := path.Match(p, ""); err != nil {
				add("certified.rule", "rule %d: bad pattern %q", i+1, p)
			}
		}
	}
	return ps
}

func (c *Config) normalize() {
	for i, d := range c.Domains {
		c.Domains[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}
}

// checkName accepts a DNS name (letters, digits, '-', '.').
func checkName(s string) error {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return errors.New("must be a host or domain name")
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("has an empty or over-long label")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("contains %q", r)
			}
		}
	}
	return nil
}

func checkAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not host:port: %v", err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// ParseLevel maps a log_level value to a slog level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
}

// keyLine finds the line where key is set, by following table headers; it
// returns 0 when it cannot tell (the TOML library does not expose key
// positions).
func keyLine(data []byte, key []string) int {
	if len(key) == 0 {
		return 0
	}
	table := ""
	want := strings.Join(key[:len(key)-1], ".")
	last := key[len(key)-1]
	tableLine := 0
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			name := strings.Trim(t, "[] \t")
			if j := strings.IndexByte(name, '#'); j >= 0 {
				name = strings.TrimSpace(strings.Trim(name[:j], "[] \t"))
			}
			table = strings.ReplaceAll(name, " ", "")
			if table == strings.Join(key, ".") {
				tableLine = i + 1
			}
			continue
		}
		k, _, ok := strings.Cut(t, "=")
		if !ok {
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), `"'`)
		full := k
		if table != "" {
			full = table + "." + k
		}
		if full == strings.Join(key, ".") || (table == want && k == last) {
			return i + 1
		}
	}
	return tableLine
}

// ByteSize is a size in bytes, written in the file as an integer or as a
// string with a unit ("50MiB", "10 MB", "512k").
type ByteSize int64

// UnmarshalTOML implements toml.Unmarshaler.
func (b *ByteSize) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		*b = ByteSize(x)
		return nil
	case string:
		n, err := ParseByteSize(x)
		if err != nil {
			return err
		}
		*b = n
		return nil
	}
	return fmt.Errorf("want a size in bytes or a string like \"50MiB\", not %T", v)
}

// ParseByteSize parses "123", "50MiB", "10 MB", "512k" (k, M, G are
// binary multiples either way: sizes of messages, not of disks).
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	var mult int64
	switch strings.ToLower(strings.TrimSpace(t[i:])) {
	case "", "b":
		mult = 1
	case "k", "kb", "kib":
		mult = 1 << 10
	case "m", "mb", "mib":
		mult = 1 << 20
	case "g", "gb", "gib":
		mult = 1 << 30
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q", s, t[i:])
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return ByteSize(n * mult), nil
}

func (b ByteSize) String() string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b >= 1<<10 && b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return fmt.Sprintf("%d", int64(b))
}

// ResolveData is the data directory a command uses: the --data flag, else
// the environment's CERTMAIL_DATA, else the config file's data (or the
// default).
func ResolveData(flag, env, file string) string {
	switch {
	case flag != "":
		return flag
	case env != "":
		return env
	}
	return file
}
