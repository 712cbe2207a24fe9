package main

// Operations (issue 7): `certmail tls selfsigned`, `certmail backup` and
// `certmail restore`, the admin methods behind them, /healthz and
// Thunderbird autoconfig on the HTTP listener, the IMAP abuse limits from
// the config, and sd_notify for systemd's Type=notify.

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

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"certmail/admin"
	"certmail/authguard"
	"certmail/autoconfig"
	"certmail/backup"
	"certmail/config"
	"certmail/imapsrv"
	"certmail/mailbox"
	"certmail/progress"
)

// ---- certmail tls selfsigned ----

func newTLSCmd(e *env) *cobra.Command {
	var hosts, out string
	var days int
	var force bool
	ss := &cobra.Command{
		Use:   "selfsigned --host NAME[,NAME...] --out DIR [--days N] [--force]",
		Short: "write DIR/cert.pem and DIR/key.pem (self-signed, for development)",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if days < 1 {
				return usageError("--days must be 1 or more")
			}
			return status(runTLSSelfSigned(e, hosts, out, days, force))
		},
	}
	ss.Flags().StringVar(&hosts, "host", "", "host `names` and IP addresses the certificate is for, comma-separated")
	ss.Flags().StringVar(&out, "out", "", "`directory` to write cert.pem and key.pem to")
	ss.Flags().IntVar(&days, "days", 365, "validity in `days`")
	ss.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	ss.MarkFlagRequired("host")
	ss.MarkFlagRequired("out")
	return groupCmd("tls", "TLS certificates", ss)
}

func runTLSSelfSigned(e *env, hosts, out string, days int, force bool) int {
	certFile, keyFile, err := config.WriteSelfSigned(out, strings.Split(hosts, ","), time.Duration(days)*24*time.Hour, force)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail tls selfsigned: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "wrote %s and %s\nserve with: certmail serve --tls-cert %s --tls-key %s\n", certFile, keyFile, certFile, keyFile)
	return exitOK
}

// ---- IMAP limits and HTTP ----

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

// logOptions are serve's log settings. Under systemd (JOURNAL_STREAM is
// set when stderr goes to the journal) the time is left out: journald
// stamps every line itself, and the duplicate only widens `journalctl`.
func logOptions(level slog.Level) *slog.HandlerOptions {
	o := &slog.HandlerOptions{Level: level}
	if os.Getenv("JOURNAL_STREAM") != "" {
		o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
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
func (s *services) addOpsMethods(m admin.Methods) {
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

func newBackupCmd(e *env) *cobra.Command {
	var df dirFlags
	var out string
	c := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "write a consistent backup, also while serving",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			return status(runBackup(e, &df, out))
		},
	}
	df.register(c.Flags())
	c.Flags().StringVar(&out, "out", "", "backup `file` to create")
	c.MarkFlagRequired("out")
	return c
}

func runBackup(e *env, df *dirFlags, out string) int {
	return withOps(e, df, "backup", func(ctx context.Context, ops admin.Ops, cfg *config.Config) error {
		// The archive's size is known only at its end: the data
		// directory's is the estimate the bar runs against.
		meter := newMeter(e, "backup", dataDirSize(cfg.Data), true)
		res, size, err := backup.Fetch(ctx, ops, out, meter)
		if err != nil {
			meter.Abort()
			return err
		}
		_, took := meter.Done()
		enc := ""
		if res.Encrypted {
			enc = ", encrypted with the store's key"
		}
		fmt.Fprintf(e.stdout, "wrote %s (%s%s) in %s, %s: store of %s (%s), files %s\n",
			out, progress.Bytes(size), enc, progress.Elapsed(took), progress.Rate(rate(size, took)),
			records(res.Pairs), progress.Bytes(res.StoreBytes), strings.Join(res.Files, ", "))
		return nil
	})
}

// newMeter shows a long operation's progress on stderr: a bar on a
// terminal, a plain line every 10 s otherwise (a log, cron mail).
func newMeter(e *env, what string, total int64, estimated bool) *progress.Meter {
	f, ok := e.stderr.(*os.File)
	tty := ok && term.IsTerminal(int(f.Fd()))
	return progress.New(e.stderr, what, progress.Options{Total: total, Estimated: estimated, Terminal: tty})
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// dataDirSize is the size of the data directory's files, 0 if unknown.
func dataDirSize(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

func newRestoreCmd(e *env) *cobra.Command {
	var df dirFlags
	c := &cobra.Command{
		Use:   "restore FILE --data DIR",
		Short: "restore a backup into a new data directory (--config: its encryption_key_file)",
		Long: `Restores a backup into a new data directory. DIR must be new or empty; the
config's encryption_key_file decrypts the backup and encrypts the new store.`,
		Args: exactArgs("FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			if df.data == "" && df.config == "" {
				return usageError("give the new data directory (--data DIR, or a --config naming it)")
			}
			return status(runRestore(e, &df, args[0]))
		},
	}
	df.register(c.Flags())
	return c
}

func runRestore(e *env, df *dirFlags, file string) int {
	cfg, err := df.load()
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail restore: %v\n", err)
		return exitFailure
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var size int64
	if fi, err := os.Stat(file); err == nil {
		size = fi.Size()
	}
	so, err := storeOptions(cfg, logger)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail restore: %v\n", err)
		return exitFailure
	}
	meter := newMeter(e, "restore", size, false)
	man, tr, err := backup.Restore(so, file, meter)
	if err != nil {
		meter.Abort()
		fmt.Fprintf(e.stderr, "certmail restore: %v\n", err)
		return exitFailure
	}
	_, took := meter.Done()
	store := "store of " + records(tr.Pairs)
	if tr.Version != 0 { // a backup of format 1, Badger's stream
		store = fmt.Sprintf("store at version %d", tr.Version)
	}
	fmt.Fprintf(e.stdout, "restored %s (%s) into %s in %s, %s: %s (%s), files %s\n",
		file, progress.Bytes(size), cfg.Data, progress.Elapsed(took), progress.Rate(rate(size, took)),
		store, progress.Bytes(tr.Bytes), strings.Join(man.Files, ", "))
	return exitOK
}

// records is a count of key-value pairs as a summary prints it.
func records(n int64) string {
	if n == 1 {
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}
