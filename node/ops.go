package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"certmail/admin"
	"certmail/authguard"
	"certmail/autoconfig"
	"certmail/backup"
	"certmail/config"
	"certmail/imapsrv"
	"certmail/mailbox"
)

// imapLimits are the [limits] the IMAP server enforces.
func imapLimits(cfg *config.Config) imapsrv.Limits {
	l := cfg.Limits
	return imapsrv.Limits{
		MaxConnectionsPerIP: l.MaxConnectionsPerIP,
		MaxSessionsPerUser:  l.MaxSessionsPerUser,
		LoopbackExempt:      l.LoopbackExempt,
		MaxSearchKeys:       l.MaxSearchKeys,
		SearchTimeout:       time.Duration(l.SearchTimeout),
	}
}

// imapMetadata is the METADATA part of [limits] with [metadata]'s
// read-only server entries.
func imapMetadata(cfg *config.Config) imapsrv.MetadataOptions {
	l := cfg.Limits
	return imapsrv.MetadataOptions{
		MaxEntrySize: int64(l.MetadataMaxEntrySize),
		MaxEntries:   l.MetadataMaxEntries,
		MaxBytes:     int64(l.MetadataMaxBytes),
		Admin:        cfg.Metadata.Admin,
		Comment:      cfg.Metadata.Comment,
	}
}

// authPolicy is the failed-login part of [limits], enforced on every way
// to authenticate.
func authPolicy(cfg *config.Config) authguard.Policy {
	l := cfg.Limits
	return authguard.Policy{
		FreeFailures:   l.LoginFreeFailures,
		MaxFailures:    l.LoginMaxFailures,
		Delay:          time.Duration(l.LoginDelay),
		Lockout:        time.Duration(l.LoginLockout),
		LoopbackExempt: l.LoopbackExempt,
	}
}

// registerOpsHTTP adds /healthz and the autoconfig document to mux.
func registerOpsHTTP(mux *http.ServeMux, cfg *config.Config, store *mailbox.Store, logger *slog.Logger) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		// Healthy means the store answers a read, not only that the
		// process accepts connections: a wedged or closed store fails.
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := store.AccountExists("healthz")
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				logger.Error("health check: store does not answer", "err", err)
				http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, "ok")
		case <-ctx.Done():
			logger.Error("health check: store did not answer in 5s")
			http.Error(w, "store: no answer in 5s", http.StatusServiceUnavailable)
		}
	})
	h := autoconfig.Handler(autoconfigOptions(cfg))
	for _, p := range autoconfig.Paths {
		mux.Handle("GET "+p, h)
	}
}

// autoconfigOptions fills in [autoconfig] from the listeners and TLS.
func autoconfigOptions(cfg *config.Config) autoconfig.Options {
	ac := cfg.Autoconfig
	// An empty imap_host is the name the client reached the document
	// by, not this machine's name: that is rarely what the world calls it.
	o := autoconfig.Options{Domains: cfg.Domains, DisplayName: ac.DisplayName, FallbackHost: cfg.Hostname}
	o.IMAP = autoconfig.Server{Host: ac.IMAPHost, Port: ac.IMAPPort, SocketType: ac.IMAPSocketType}
	addr, socket := cfg.Listen.IMAP, "plain"
	if cfg.Listen.IMAPS != "" {
		addr, socket = cfg.Listen.IMAPS, "SSL"
	} else if cfg.TLS.Enabled() {
		socket = "STARTTLS"
	}
	if o.IMAP.SocketType == "" {
		o.IMAP.SocketType = socket
	}
	if o.IMAP.Port == 0 {
		if _, p, err := net.SplitHostPort(addr); err == nil {
			o.IMAP.Port, _ = strconv.Atoi(p)
		}
	}
	// Always an outgoing server: Thunderbird refuses a document without
	// one. Without smtp_host, the submission port on the IMAP host.
	o.SMTP = autoconfig.Server{Host: ac.SMTPHost, Port: ac.SMTPPort, SocketType: ac.SMTPSocketType}
	if o.SMTP.Port == 0 {
		o.SMTP.Port = 587
	}
	if o.SMTP.SocketType == "" {
		o.SMTP.SocketType = "STARTTLS"
	}
	return o
}

// sdNotify tells systemd (Type=notify) about the service's state, when run
// under it: one datagram to $NOTIFY_SOCKET, no dependency needed.
func sdNotify(state string, logger *slog.Logger) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if strings.HasPrefix(path, "@") { // abstract socket
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		logger.Warn("sd_notify", "state", state, "err", err)
		return
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		logger.Warn("sd_notify", "state", state, "err", err)
	}
}

// addOpsMethods registers the backup stream methods: ops.backup.open
// starts the archive in the process holding the store, ops.backup.read
// returns its next bytes until the end, and the CLI writes the file
// (backup.Fetch).
func (s *Services) addOpsMethods(m admin.Methods) {
	key := func() ([]byte, error) {
		if s.cfg.EncryptionKeyFile == "" {
			return nil, nil
		}
		return config.ReadEncryptionKey(s.cfg.EncryptionKeyFile)
	}
	b := backup.NewStreams(s.certified.Store(), s.cfg.Data, key, s.logger.With("component", "backup"))
	m["ops.backup.open"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		if err := admin.DecodeParams(raw, &struct{}{}); err != nil {
			return nil, err
		}
		id, err := b.Open()
		return backup.StreamParams{ID: id}, err
	}
	m["ops.backup.read"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p backup.StreamParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		return b.Read(p.ID)
	}
	m["ops.backup.close"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p backup.StreamParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		b.Close(p.ID)
		return nil, nil
	}
}
