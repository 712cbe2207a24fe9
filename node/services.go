package node

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"certmail/addressing"
	"certmail/authguard"
	"certmail/certified"
	"certmail/config"
	"certmail/delivery"
	"certmail/forwarding"
	"certmail/mailbox"
	"certmail/metrics"
	"certmail/notifier"
)

// Services are the parts that run on an open store besides the listeners:
// certified mail and the notice outbox.
type Services struct {
	certified  *certified.Service
	forwarding *forwarding.Service
	outbox     *notifier.Outbox
	// addresses is the one rule for which addresses are local accounts,
	// shared by delivery, certified mail and forwarding.
	addresses *addressing.Resolver
	// auth checks every password, for every protocol (authguard).
	auth *authguard.Guard
	// cfg and logger are what the process was started with (ops.go:
	// backups).
	cfg    *config.Config
	logger *slog.Logger
}

// OpenServices builds certified mail and the outbox on store, as every
// process that opens the store must (a `certmail deliver` without
// a server certifies mail just as the server does). m counts logins (nil
// outside serve).
func OpenServices(cfg *config.Config, logger *slog.Logger, store *mailbox.Store, m *metrics.Metrics) (*Services, error) {
	outbox, err := notifier.NewOutbox(store.Records(), outboxConfig(cfg, logger))
	if err != nil {
		return nil, fmt.Errorf("notice outbox: %w", err)
	}
	// The evidence log keeps the name it was created under (serve refuses
	// a hostname that differs; every other command just uses it).
	gateway, err := certified.LogIdentity(store, cfg.Hostname, false)
	if err != nil {
		return nil, err
	}
	// On a shared store, the key in this node's data directory must be
	// the one every node signs with.
	if Shared(cfg) {
		if err := claimGatewayKey(store, cfg.Data); err != nil {
			return nil, err
		}
	}
	lg, _, err := certified.OpenLog(cfg.Data, gateway)
	if err != nil {
		return nil, err
	}
	addrs := addressing.New(addressing.Options{
		Domains:          cfg.Domains,
		Hostname:         cfg.Hostname,
		AlternateDomains: cfg.Certified.AlternateDomains,
	})
	postmaster := cfg.Relay.From
	if postmaster == "" {
		postmaster = "certmail <postmaster@" + addrs.Primary() + ">"
	}
	rules := make([]certified.Rule, len(cfg.Certified.Rules))
	for i, r := range cfg.Certified.Rules {
		rules[i] = certified.Rule{Recipient: r.Recipient, Sender: r.Sender}
	}
	svc := certified.New(store, lg, certified.Options{
		Gateway:         gateway,
		Addresses:       addrs,
		Postmaster:      postmaster,
		IMAPAddr:        cfg.Listen.IMAP,
		DefaultDeadline: time.Duration(cfg.Certified.Deadline),
		DefaultOnExpiry: cfg.Certified.OnExpiry,
		DefaultReveal:   cfg.Certified.Reveal,
		Rules:           rules,
		Notices:         outbox,
		Webhooks:        webhookURLs(cfg),
		Logger:          logger.With("component", "certified"),
	})
	var policies []forwarding.Policy
	for _, f := range cfg.Forward {
		policies = append(policies, forwarding.Policy{Account: f.Account, Mailbox: f.Mailbox, After: time.Duration(f.After),
			To: slices.Clone(f.To), CertifiedOnly: f.CertifiedOnly})
	}
	fw, err := forwarding.New(store, forwarding.Options{
		Addresses:      addrs,
		Postmaster:     postmaster,
		AlertAfter:     time.Duration(cfg.Alerts.After),
		AlertTo:        slices.Clone(cfg.Alerts.To),
		Webhooks:       webhookURLs(cfg),
		ConfigPolicies: policies,
		Certified:      svc,
		Notices:        outbox,
		Logger:         logger.With("component", "forwarding"),
	})
	if err != nil {
		return nil, err
	}
	// Logins by address resolve as delivery does: one rule for what
	// alice@example.org is.
	pol := authPolicy(cfg) // ops.go
	pol.Addresses = addrs
	pol.Metrics = m
	if store.Shared() {
		// Nodes on one database share one failed-login budget.
		pol.Shared = store.Records()
	}
	auth := authguard.New(store, pol, logger.With("component", "auth"))
	return &Services{certified: svc, forwarding: fw, outbox: outbox, addresses: addrs, auth: auth, cfg: cfg, logger: logger}, nil
}

// timerHandlers are every service's timer handlers, by kind.
func (s *Services) timerHandlers() map[string]mailbox.TimerHandler {
	h := s.certified.Handlers()
	for k, v := range s.forwarding.Handlers() {
		h[k] = v
	}
	return h
}

func outboxConfig(cfg *config.Config, logger *slog.Logger) notifier.Config {
	// Notices are queued inside the transactions of the events they
	// report, which commit after Enqueue returns; a short poll (a scan that
	// stops at the first notice not yet due) sends them promptly.
	c := notifier.Config{
		Logger:       logger.With("component", "outbox"),
		PollInterval: 2 * time.Second,
		BackoffBase:  time.Duration(cfg.Relay.RetryAfter),
		MaxAttempts:  cfg.Relay.MaxAttempts,
	}
	if cfg.Relay.Addr != "" {
		c.Relay = &notifier.Relay{
			Addr:        cfg.Relay.Addr,
			HeloName:    cfg.Hostname,
			StartTLS:    cfg.Relay.TLS == "starttls",
			ImplicitTLS: cfg.Relay.TLS == "tls",
			Username:    cfg.Relay.Username,
			Password:    cfg.Relay.Password,
		}
	}
	for _, w := range cfg.Webhooks {
		c.Webhooks = append(c.Webhooks, notifier.Webhook{URL: w.URL, Secret: w.Secret})
	}
	return c
}

// deliveryOptions sets the delivery options' certifier and address rule
// from services.
func (s *Services) DeliveryOptions(o delivery.Options) delivery.Options {
	o.Certifier = s.certified
	o.Addresses = s.addresses
	return o
}

func webhookURLs(cfg *config.Config) []string {
	var out []string
	for _, w := range cfg.Webhooks {
		out = append(out, w.URL)
	}
	return out
}
