package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"certmail/admin"
	"certmail/buildinfo"
	"certmail/certified"
	"certmail/config"
	"certmail/delivery"
	"certmail/forwarding"
	"certmail/imapsrv"
	"certmail/kv"
	"certmail/mailbox"
	"certmail/metrics"
	"certmail/netguard"
)

// openServeStore opens the store serve runs on: the data directory
// (made if missing, and held by this process alone), or the PostgreSQL
// database shared with other nodes.
func openServeStore(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*mailbox.Store, func(), error) {
	so, err := StoreOptions(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	if Shared(cfg) {
		// The data directory still holds the gateway key
		// (claimGatewayKey); nothing of the store.
		if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
			return nil, nil, fmt.Errorf("creating data directory: %w", err)
		}
		e, err := openShared(ctx, cfg, "certmail-"+Name(cfg))
		if err != nil {
			return nil, nil, err
		}
		// LMTP's 250, APPEND's OK and the API's 201 are sent once the
		// commit returns: it must be durable by then. pgkv asks for
		// synchronous_commit on in every session; a pooler or a server
		// that overrides it is refused here, not found after a crash.
		if sc, err := e.Setting(ctx, "synchronous_commit"); err != nil {
			e.Close()
			return nil, nil, err
		} else if sc == "off" {
			e.Close()
			return nil, nil, fmt.Errorf("the store %s runs sessions with synchronous_commit = off: an acknowledged message could be lost in a crash; certmail asks for on, so something between (a connection pooler?) overrides it", StoreName(cfg))
		} else {
			logger.Info("store", "store", StoreName(cfg), "synchronous_commit", sc)
		}
		if empty, err := kv.IsEmpty(e); err != nil {
			e.Close()
			return nil, nil, fmt.Errorf("reading the store %s: %w", StoreName(cfg), err)
		} else if empty {
			logger.Info("creating a new store", "store", StoreName(cfg))
		}
		so.Engine = e
		st, err := mailbox.Open(so)
		return st, e.Abort, err
	}
	if exists, err := mailbox.Exists(cfg.Data); err != nil {
		return nil, nil, err
	} else if !exists {
		logger.Info("creating a new store", "data", AbsPath(cfg.Data))
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating data directory: %w", err)
	}
	store, err := mailbox.Open(so)
	if err != nil {
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, nil, fmt.Errorf("data directory %s is in use by another process (another certmail serve?)", cfg.Data)
		}
		return nil, nil, err
	}
	return store, nil, nil
}

// storeWhere names the store in a message: the data directory as
// configured, or the database.
func storeWhere(cfg *config.Config) string {
	if Shared(cfg) {
		return StoreName(cfg)
	}
	return cfg.Data
}

// listener is one bound socket and what serves it.
type listener struct {
	proto string
	ln    net.Listener
	serve func(net.Listener) error
}

// Run runs a node (certmail serve) on cfg, which the caller has
// validated and whose files it has checked, until ctx is cancelled (a
// signal) or a listener fails, then shuts down in order: stop listening,
// let running commands finish, stop the timers and the outbox, sync and
// close the store.
func Run(ctx context.Context, cfg *config.Config, logger *slog.Logger) (err error) {
	// The first line says which build runs, for a bug report or an
	// upgrade check in the journal.
	bi := buildinfo.Read()
	logger.Info("certmail starting", "version", bi.Version, "revision", bi.ShortRevision(), "go", bi.Go)
	// Every connection costs a descriptor: take all the system allows.
	if n, err := netguard.RaiseFileLimit(); err != nil {
		logger.Warn("open file limit", "err", err, "limit", n)
	} else {
		logger.Info("open file limit", "limit", n)
	}
	store, abortStore, err := openServeStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	// Armed when the shutdown begins, disarmed once the store is closed
	// (this defer runs last): see below.
	var abandon *time.Timer
	defer func() {
		if abandon != nil {
			abandon.Stop()
		}
	}()
	defer func() {
		// Last: everything acknowledged is already synced, but flag
		// changes and the like are made durable here.
		if serr := store.Sync(); serr != nil {
			err = errors.Join(err, fmt.Errorf("final sync: %w", serr))
		}
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing store: %w", cerr))
		}
		logger.Info("store closed")
	}()

	// The evidence log is signed under the name it was created with.
	if gw, err := certified.LogIdentity(store, cfg.Hostname, true); err != nil {
		return err
	} else if gw != cfg.Hostname {
		return fmt.Errorf("the evidence log in %s was created under the gateway name %q, and its records and checkpoints are signed under it; hostname is %q. Set hostname = %q in the config (or --hostname %s): the name cannot change for a store (a new name needs a new store)", storeWhere(cfg), gw, cfg.Hostname, gw, gw)
	}
	// Prometheus families (metrics), served on their own listener below.
	registry := prometheus.NewRegistry()
	m := metrics.New(registry)
	svcs, err := OpenServices(cfg, logger, store, m)
	if err != nil {
		return err
	}
	deliverer := delivery.NewDeliverer(store, svcs.DeliveryOptions(BaseDeliveryOptions(cfg, logger)))
	// Timers (certified deadlines) and the notice outbox run until the
	// listeners have stopped, and stop before the store closes.
	bgCtx, stopBackground := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); store.RunTimers(bgCtx, time.Second, svcs.timerHandlers()) }()
	go func() { defer bg.Done(); svcs.outbox.Run(bgCtx) }()
	// Signed checkpoints of the evidence log (evidence_methods.go, issue 5).
	bg.Add(1)
	go func() { defer bg.Done(); svcs.runCheckpoints(bgCtx, logger) }()
	defer func() { stopBackground(); bg.Wait() }()

	var tlsConfig *tls.Config
	var certs *certReloader
	if cfg.TLS.Enabled() {
		if certs, err = newCertReloader(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
			return err
		}
		tlsConfig = &tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12}
	}

	imap := imapsrv.New(store, imapsrv.Options{
		Logger:       logger.With("component", "imap"),
		TLSConfig:    tlsConfig,
		InsecureAuth: cfg.AllowInsecureAuth,
		AppendLimit:  uint32(cfg.Limits.MaxMessageSize),
		Hooks:        svcs.certified,
		Limits:       imapLimits(cfg), // ops.go
		Metadata:     imapMetadata(cfg),
		Auth:         svcs.auth,
		Metrics:      m,
	})
	// Checked when the configuration was loaded.
	trusted, err := cfg.Certified.TrustedLMTPPrefixes()
	if err != nil {
		return fmt.Errorf("certified.trusted_lmtp_clients: %w", err)
	}
	lmtp := delivery.NewLMTPServer(deliverer, delivery.LMTPOptions{
		Hostname:       cfg.Hostname,
		MaxRecipients:  cfg.Limits.MaxRecipients,
		MaxSessions:    cfg.Limits.MaxLMTPSessions,
		TrustedClients: trusted,
		Logger:         logger.With("component", "lmtp"),
		Metrics:        m,
	})
	mux := http.NewServeMux()
	// /healthz and Thunderbird autoconfig (ops.go).
	registerOpsHTTP(mux, cfg, store, logger)
	// The sender API and the public evidence log under /v1/ (evidence_methods.go, issue 5).
	svcs.registerAPI(mux, cfg, deliverer, logger)
	httpOpts := netguard.HTTPOptions{
		ReadHeaderTimeout: time.Duration(cfg.HTTP.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(cfg.HTTP.ReadTimeout),
		WriteTimeout:      time.Duration(cfg.HTTP.WriteTimeout),
		IdleTimeout:       time.Duration(cfg.HTTP.IdleTimeout),
		Logger:            logger.With("component", "http"),
	}
	httpSrv := netguard.HTTPServer(mux, httpOpts)
	// Metrics on a listener of their own, never on the public API's: the
	// servers' counters, unread monitoring and the store's state, both
	// computed at scrape time.
	registry.MustRegister(forwarding.NewCollector(svcs.forwarding, cfg.Metrics.PerMailbox),
		metrics.NewStateCollector(store.Records(), cfg.Data, logger.With("component", "metrics")))
	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", metrics.Handler(registry))
	metricsSrv := netguard.HTTPServer(metricsMux, httpOpts)
	// HTTP servers get the per-address cap on their listener (IMAP counts
	// its own, to say BYE; LMTP caps sessions in delivery).
	serveHTTP := func(name string, srv *http.Server) func(net.Listener) error {
		return func(ln net.Listener) error {
			return srv.Serve(netguard.Guard(ln, netguard.Options{
				Name:           name,
				Logger:         logger.With("component", name),
				MaxConnsPerIP:  cfg.Limits.MaxConnectionsPerIP,
				LoopbackExempt: cfg.Limits.LoopbackExempt,
				Refusal:        netguard.HTTPRefusal,
			}))
		}
	}
	adminSrv := admin.NewServer(&admin.Local{Store: store, Deliverer: deliverer, Methods: svcs.AdminMethods()}, admin.ServerOptions{
		Logger:          logger.With("component", "admin"),
		MaxRequestBytes: int(cfg.Limits.MaxMessageSize)*4/3 + 1<<20,
	})

	// Bind everything before serving anything, so a taken port fails the
	// start instead of leaving a half-running server.
	var lns []listener
	closeAll := func() {
		for _, l := range lns {
			l.ln.Close()
		}
	}
	// Behind a TCP proxy that names each client in a PROXY protocol
	// header, every listener reads it, so that all per-address decisions
	// see the client (netguard.ProxyProtocol).
	proxies, err := cfg.Listen.ProxyPrefixes()
	if err != nil {
		return fmt.Errorf("listen.proxy_protocol_from: %w", err)
	}
	if len(proxies) > 0 {
		logger.Info("PROXY protocol headers expected", "from", cfg.Listen.ProxyProtocolFrom)
	}
	bind := func(proto, addr string, serveFn func(net.Listener) error) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", proto, err)
		}
		if len(proxies) > 0 {
			ln = netguard.ProxyProtocol(ln, proxies, logger.With("component", proto))
		}
		lns = append(lns, listener{proto, ln, serveFn})
		return nil
	}
	for _, b := range []struct {
		proto, addr string
		fn          func(net.Listener) error
	}{
		{"imap", cfg.Listen.IMAP, imap.Serve},
		{"imaps", cfg.Listen.IMAPS, imap.ServeTLS},
		{"lmtp", cfg.Listen.LMTP, lmtp.Serve},
		{"http", cfg.Listen.HTTP, serveHTTP("http", httpSrv)},
		{"metrics", cfg.Listen.Metrics, serveHTTP("metrics", metricsSrv)},
	} {
		if err := bind(b.proto, b.addr, b.fn); err != nil {
			closeAll()
			return err
		}
	}
	// The admin socket is how commands reach a data directory the
	// server holds. A shared store has none to hold: commands open the
	// database themselves, whether a node runs or not.
	if !Shared(cfg) {
		adminLn, err := admin.Listen(admin.SocketPath(cfg.Data))
		if err != nil {
			closeAll()
			return err
		}
		lns = append(lns, listener{"admin", adminLn, adminSrv.Serve})
	}

	failed := make(chan error, len(lns))
	var wg sync.WaitGroup
	for _, l := range lns {
		// The bound address, not the configured one: with port 0 this is
		// how a caller (and the crash test) learns the port.
		logger.Info("listening", "proto", l.proto, "addr", l.ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				failed <- fmt.Errorf("%s listener: %w", l.proto, err)
			}
		}()
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if Shared(cfg) {
		logger.Info("certmail started", "store", StoreName(cfg), "node", Name(cfg), "data", cfg.Data, "hostname", cfg.Hostname)
	} else {
		logger.Info("certmail started", "data", cfg.Data, "hostname", cfg.Hostname)
	}
	sdNotify("READY=1", logger) // systemd Type=notify (ops.go)
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
			sdNotify("STOPPING=1", logger)
			break loop
		case runErr = <-failed:
			logger.Error("listener failed; shutting down", "err", runErr)
			break loop
		case <-hup:
			if certs != nil {
				if err := certs.reload(); err != nil {
					logger.Error("reloading TLS certificate; keeping the old one", "err", err)
				} else {
					logger.Info("TLS certificate reloaded")
				}
			}
		}
	}

	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	// A database that does not answer (a hung host, a network dropping
	// packets) would hold what still runs on it (a delivery, the timers,
	// the follower, the store's close) for up to a statement timeout each.
	// Once the budget is spent, the store's work is abandoned: every
	// statement fails at once, nothing more is acknowledged, and the node
	// exits in time, as it would on Badger.
	if abortStore != nil {
		abandon = time.AfterFunc(time.Duration(cfg.ShutdownTimeout), func() {
			logger.Warn("shutdown budget spent: abandoning the database work still running", "timeout", cfg.ShutdownTimeout.String())
			abortStore()
		})
	}
	var errs []error
	// Stop taking new work everywhere at once, then wait for what runs.
	var swg sync.WaitGroup
	for _, fn := range []func() error{
		func() error { return lmtp.Shutdown(sctx) },
		func() error { return httpSrv.Shutdown(sctx) },
		func() error { return metricsSrv.Shutdown(sctx) },
		func() error { return adminSrv.Shutdown(sctx) },
		imap.Close,
	} {
		swg.Add(1)
		go func() {
			defer swg.Done()
			if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Warn("shutdown", "err", err)
			}
		}()
	}
	swg.Wait()
	// A delivery whose connection was cut still finishes (and syncs)
	// before the store closes.
	if err := deliverer.Close(sctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown_timeout (%v) spent with deliveries still running (none of them acknowledged; the MTA tries again): %w", cfg.ShutdownTimeout, err))
	}
	closeAll()
	wg.Wait()
	if runErr != nil {
		errs = append(errs, runErr)
	}
	return errors.Join(errs...)
}

// certReloader serves the current certificate and replaces it on SIGHUP
// without touching open connections.
type certReloader struct {
	certFile, keyFile string
	mu                sync.RWMutex
	cert              *tls.Certificate
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) reload() error {
	c, err := config.TLS{Cert: r.certFile, Key: r.keyFile}.LoadCertificate()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.cert = &c
	r.mu.Unlock()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert, nil
}
