package main

// Operations (issue 7): `certmail tls selfsigned`, `certmail backup` and
// `certmail restore`, the admin methods behind them, /healthz and
// Thunderbird autoconfig on the HTTP listener, the IMAP abuse limits from
// the config, and sd_notify for systemd's Type=notify.

import (
	"archive/tar"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"certmail/admin"
	"certmail/authguard"
	"certmail/autoconfig"
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
	certPEM, keyPEM, err := selfSigned(strings.Split(hosts, ","), time.Duration(days)*24*time.Hour)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail tls selfsigned: %v\n", err)
		return exitFailure
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		fmt.Fprintf(e.stderr, "certmail tls selfsigned: %v\n", err)
		return exitFailure
	}
	certFile, keyFile := filepath.Join(out, "cert.pem"), filepath.Join(out, "key.pem")
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{keyFile, keyPEM, 0o600}, {certFile, certPEM, 0o644}} {
		if err := writeFileFlags(f.path, f.data, flags, f.mode); err != nil {
			fmt.Fprintf(e.stderr, "certmail tls selfsigned: %v (--force overwrites)\n", err)
			return exitFailure
		}
	}
	fmt.Fprintf(e.stdout, "wrote %s and %s\nserve with: certmail serve --tls-cert %s --tls-key %s\n", certFile, keyFile, certFile, keyFile)
	return exitOK
}

func writeFileFlags(path string, data []byte, flags int, mode os.FileMode) error {
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		return err
	}
	// O_TRUNC keeps an existing file's mode: a key must not stay readable.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// selfSigned makes an ECDSA P-256 certificate for hosts (DNS names and IP
// addresses) signed by its own key. It is marked as a CA so that clients
// can trust it directly as their CA file (curl --cacert, Python's
// cafile=, openssl -CAfile), strict X.509 checks included.
func selfSigned(hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-time.Hour), // clock skew
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
		if tmpl.Subject.CommonName == "" {
			tmpl.Subject.CommonName = h
		}
	}
	if len(tmpl.DNSNames)+len(tmpl.IPAddresses) == 0 {
		return nil, nil, errors.New("no --host given")
	}
	if tmpl.Subject.CommonName == "" {
		tmpl.Subject.CommonName = tmpl.IPAddresses[0].String()
	}
	tmpl.Subject.Organization = []string{"certmail self-signed"}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
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

// ---- backup and restore ----

// A backup is a tar archive, written as a stream (no scratch file, and
// memory bounded by one chunk):
//
//	certmail-backup.json      manifest: format, time, the files below
//	files/NAME                the data directory's own files (gateway.key)
//	store/000000, 000001, …   Badger's backup stream, in chunks of 4 MiB
//	certmail-backup-end.json  trailer: store version, chunks and bytes
//
// The trailer is written only once the store stream is complete, so a
// truncated archive is refused. When the store is encrypted at rest, the
// whole archive is encrypted with the same key (backupcrypt.go).
const (
	backupManifestName = "certmail-backup.json"
	backupTrailerName  = "certmail-backup-end.json"
	backupStorePrefix  = "store/"
	backupFilesDir     = "files/"
	backupFormat       = 1
	backupStoreChunk   = 4 << 20
	// backupReadChunk is what one ops.backup.read returns: its base64
	// must fit the admin client's 1 MiB reply line.
	backupReadChunk = 512 << 10
	// backupIdle ends a backup stream nobody reads (a CLI that died).
	backupIdle = time.Minute
)

type backupManifest struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	Files   []string  `json:"files"`
}

type backupTrailer struct {
	// Version is the store version the snapshot is consistent at.
	Version uint64 `json:"version"`
	Chunks  int    `json:"chunks"`
	Bytes   int64  `json:"bytes"`
}

// BackupResult says what a backup holds.
type BackupResult struct {
	Version    uint64   `json:"version"`
	StoreBytes int64    `json:"store_bytes"`
	Files      []string `json:"files"`
	Encrypted  bool     `json:"encrypted"`
}

// writeBackupArchive streams the archive of store and the files of
// cfg.Data to w. Badger reads the store from one snapshot: a delivery
// committing meanwhile is wholly in the backup or not at all, and
// writers are not blocked.
func writeBackupArchive(store *mailbox.Store, cfg *config.Config, w io.Writer) (*BackupResult, error) {
	var key []byte
	if cfg.EncryptionKeyFile != "" {
		var err error
		if key, err = config.ReadEncryptionKey(cfg.EncryptionKeyFile); err != nil {
			return nil, err
		}
	}
	files, err := dataDirFiles(cfg.Data)
	if err != nil {
		return nil, err
	}
	out, err := newBackupWriter(w, key)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(out)
	man, _ := json.MarshalIndent(backupManifest{Format: backupFormat, Created: time.Now().UTC(), Files: files}, "", "  ")
	if err := tarAdd(tw, backupManifestName, man); err != nil {
		return nil, err
	}
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(cfg.Data, name))
		if err != nil {
			return nil, fmt.Errorf("backing up %s: %w", name, err)
		}
		if err := tarAdd(tw, backupFilesDir+name, data); err != nil {
			return nil, err
		}
	}
	ch := &chunkWriter{tw: tw, buf: make([]byte, 0, backupStoreChunk)}
	version, err := store.Backup(ch)
	if err == nil {
		err = ch.flush()
	}
	if err != nil {
		return nil, err
	}
	trailer, _ := json.Marshal(backupTrailer{Version: version, Chunks: ch.chunks, Bytes: ch.bytes})
	if err := tarAdd(tw, backupTrailerName, trailer); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	return &BackupResult{Version: version, StoreBytes: ch.bytes, Files: files, Encrypted: key != nil}, nil
}

// chunkWriter cuts the store stream into tar entries of backupStoreChunk
// bytes: a tar entry needs its size first, and the stream's is known only
// at its end.
type chunkWriter struct {
	tw     *tar.Writer
	buf    []byte
	chunks int
	bytes  int64
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), cap(c.buf)-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	if err := tarAdd(c.tw, fmt.Sprintf("%s%06d", backupStorePrefix, c.chunks), c.buf); err != nil {
		return err
	}
	c.chunks++
	c.bytes += int64(len(c.buf))
	c.buf = c.buf[:0]
	return nil
}

func tarAdd(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(data)), Mode: 0o600, ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	return nil
}

// dataDirFiles are the regular files of the data directory that are not
// Badger's: they are not in the store's backup stream but belong to the
// data (the gateway's signing key, without which the restored gateway
// would sign new evidence under a new key).
func dataDirFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading data directory: %w", err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || isBadgerFile(n) || strings.HasPrefix(n, ".") {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

func isBadgerFile(name string) bool {
	switch name {
	case "MANIFEST", "KEYREGISTRY", "DISCARD", "LOCK", "REWRITE-MANIFEST", "REWRITE-KEYREGISTRY":
		return true
	}
	for _, ext := range []string{".sst", ".vlog", ".mem"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// The backup travels to the CLI through the admin socket, in chunks:
// ops.backup.open starts the archive in the process holding the store,
// ops.backup.read returns its next bytes until the end, and the CLI
// writes the file with its own permissions, wherever it may (the server
// itself may write only its data directory under the systemd unit).

// BackupStreamParams name a backup stream.
type BackupStreamParams struct {
	ID string `json:"id"`
}

// BackupChunk is the reply of ops.backup.read.
type BackupChunk struct {
	Data []byte `json:"data"`
	EOF  bool   `json:"eof"`
	// Result is set with EOF.
	Result *BackupResult `json:"result,omitempty"`
}

type backupStreams struct {
	store *mailbox.Store
	cfg   *config.Config
	log   *slog.Logger

	mu sync.Mutex
	m  map[string]*backupStream
}

type backupStream struct {
	pr    *io.PipeReader
	timer *time.Timer
	done  chan struct{}
	res   *BackupResult
	err   error
}

func (b *backupStreams) open() (string, error) {
	idb := make([]byte, 12)
	rand.Read(idb)
	id := fmt.Sprintf("%x", idb)
	pr, pw := io.Pipe()
	st := &backupStream{pr: pr, done: make(chan struct{})}
	// A stream nobody reads for backupIdle is dropped: closing the pipe
	// makes the writer, and so Badger's stream, stop.
	st.timer = time.AfterFunc(backupIdle, func() {
		b.log.Warn("backup abandoned: nobody read it", "id", id, "idle", backupIdle.String())
		b.close(id)
	})
	b.mu.Lock()
	if len(b.m) >= 4 {
		b.mu.Unlock()
		st.timer.Stop()
		return "", fmt.Errorf("%w: 4 backups are already running", admin.ErrBadRequest)
	}
	b.m[id] = st
	b.mu.Unlock()
	b.log.Info("backup started", "id", id)
	go func() {
		defer close(st.done)
		st.res, st.err = writeBackupArchive(b.store, b.cfg, pw)
		pw.CloseWithError(st.err) // nil: the reader sees EOF
	}()
	return id, nil
}

func (b *backupStreams) get(id string) (*backupStream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.m[id]
	if st == nil {
		return nil, fmt.Errorf("%w: no backup stream %q (finished, or dropped after %v unread)", admin.ErrBadRequest, id, backupIdle)
	}
	return st, nil
}

func (b *backupStreams) close(id string) {
	b.mu.Lock()
	st := b.m[id]
	delete(b.m, id)
	b.mu.Unlock()
	if st != nil {
		st.timer.Stop()
		st.pr.CloseWithError(errors.New("backup stream closed"))
	}
}

func (b *backupStreams) read(id string) (*BackupChunk, error) {
	st, err := b.get(id)
	if err != nil {
		return nil, err
	}
	st.timer.Reset(backupIdle)
	buf := make([]byte, backupReadChunk)
	n, err := io.ReadFull(st.pr, buf)
	switch {
	case err == nil:
		return &BackupChunk{Data: buf[:n]}, nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		<-st.done
		b.close(id)
		if st.err != nil {
			return nil, st.err
		}
		b.log.Info("backup written", "id", id, "version", st.res.Version, "store_bytes", st.res.StoreBytes, "encrypted", st.res.Encrypted)
		return &BackupChunk{Data: buf[:n], EOF: true, Result: st.res}, nil
	default:
		b.close(id)
		<-st.done
		if st.err != nil {
			return nil, st.err
		}
		return nil, err
	}
}

// addOpsMethods registers the backup stream methods.
func (s *services) addOpsMethods(m admin.Methods) {
	b := &backupStreams{store: s.certified.Store(), cfg: s.cfg, m: make(map[string]*backupStream),
		log: s.logger.With("component", "backup")}
	m["ops.backup.open"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		if err := admin.DecodeParams(raw, &struct{}{}); err != nil {
			return nil, err
		}
		id, err := b.open()
		return BackupStreamParams{ID: id}, err
	}
	m["ops.backup.read"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p BackupStreamParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		return b.read(p.ID)
	}
	m["ops.backup.close"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p BackupStreamParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		b.close(p.ID)
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
		res, size, err := fetchBackup(ctx, ops, out, meter)
		_, took := meter.Done()
		if err != nil {
			return err
		}
		enc := ""
		if res.Encrypted {
			enc = ", encrypted with the store's key"
		}
		fmt.Fprintf(e.stdout, "wrote %s (%s%s) in %s, %s: store at version %d (%s), files %s\n",
			out, progress.Bytes(size), enc, progress.Elapsed(took), progress.Rate(rate(size, took)),
			res.Version, progress.Bytes(res.StoreBytes), strings.Join(res.Files, ", "))
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

// fetchBackup reads a backup stream into path, through a temporary file
// beside it that is linked into place once complete and synced: a
// failure leaves no partial file under the name, and an existing file is
// never replaced.
// count, if not nil, is written what is written to the file.
func fetchBackup(ctx context.Context, ops admin.Ops, path string, count io.Writer) (*BackupResult, int64, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, 0, fmt.Errorf("%s already exists", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".certmail-backup-*")
	if err != nil {
		return nil, 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var stream BackupStreamParams
	if err := ops.Call(ctx, "ops.backup.open", struct{}{}, &stream); err != nil {
		return nil, 0, err
	}
	var size int64
	for {
		var chunk BackupChunk
		if err := ops.Call(ctx, "ops.backup.read", stream, &chunk); err != nil {
			ops.Call(context.Background(), "ops.backup.close", stream, nil)
			return nil, 0, err
		}
		n, err := tmp.Write(chunk.Data)
		size += int64(n)
		if count != nil {
			count.Write(chunk.Data[:n])
		}
		if err != nil {
			ops.Call(context.Background(), "ops.backup.close", stream, nil)
			return nil, 0, fmt.Errorf("writing %s: %w", tmp.Name(), err)
		}
		if chunk.EOF {
			if chunk.Result == nil {
				return nil, 0, errors.New("backup stream ended without a result")
			}
			if err := tmp.Sync(); err != nil {
				return nil, 0, err
			}
			if err := tmp.Close(); err != nil {
				return nil, 0, err
			}
			if err := os.Link(tmp.Name(), path); err != nil {
				return nil, 0, fmt.Errorf("creating backup: %w", err)
			}
			return chunk.Result, size, nil
		}
	}
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
	meter := newMeter(e, "restore", size, false)
	man, tr, err := restoreBackupCounting(cfg, file, logger, meter)
	_, took := meter.Done()
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail restore: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "restored %s (%s) into %s in %s, %s: store at version %d (%s), files %s\n",
		file, progress.Bytes(size), cfg.Data, progress.Elapsed(took), progress.Rate(rate(size, took)),
		tr.Version, progress.Bytes(tr.Bytes), strings.Join(man.Files, ", "))
	return exitOK
}

// restoreBackup unpacks the archive at file into cfg.Data, which must be
// new or empty: restoring over live data would mix two histories.
func restoreBackup(cfg *config.Config, file string, logger *slog.Logger) (*backupManifest, *backupTrailer, error) {
	return restoreBackupCounting(cfg, file, logger, nil)
}

// restoreBackupCounting is restoreBackup writing each byte read from
// file to count (a progress meter), if not nil.
func restoreBackupCounting(cfg *config.Config, file string, logger *slog.Logger, count io.Writer) (*backupManifest, *backupTrailer, error) {
	if ents, err := os.ReadDir(cfg.Data); err == nil && len(ents) > 0 {
		return nil, nil, fmt.Errorf("data directory %s is not empty: restore into a new directory", cfg.Data)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	so, err := storeOptions(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var in io.Reader = f
	if count != nil {
		in = io.TeeReader(f, count)
	}
	r, err := newBackupReader(in, so.EncryptionKey)
	if err != nil {
		return nil, nil, err
	}
	// Before any file is written into it: the store checks too, but
	// only once the archive's files are in.
	if err := mailbox.PrepareDataDir(cfg.Data, nil); err != nil {
		return nil, nil, err
	}
	// The store chunks are fed, in order, to one Load running beside.
	var (
		pw       *io.PipeWriter
		loadDone chan error
		chunks   int
		bytes    int64
	)
	startLoad := func() {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		loadDone = make(chan error, 1)
		go func() {
			err := mailbox.Restore(so, pr)
			pr.CloseWithError(err) // unblocks the writer if Load stops early
			loadDone <- err
		}()
	}
	fail := func(err error) (*backupManifest, *backupTrailer, error) {
		if pw != nil {
			pw.CloseWithError(err)
			<-loadDone
		}
		// The directory was empty: leave it so, not half restored, so
		// that nobody starts a server on part of the mail.
		if ents, rerr := os.ReadDir(cfg.Data); rerr == nil {
			for _, e := range ents {
				os.RemoveAll(filepath.Join(cfg.Data, e.Name()))
			}
		}
		return nil, nil, err
	}
	tr := tar.NewReader(r)
	var man *backupManifest
	var trailer *backupTrailer
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("reading backup: %w", err))
		}
		switch {
		case trailer != nil:
			return fail(fmt.Errorf("backup: entry %q after the end", h.Name))
		case h.Name == backupManifestName && man == nil:
			man = new(backupManifest)
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(man); err != nil {
				return fail(fmt.Errorf("backup manifest: %w", err))
			}
			if man.Format != backupFormat {
				return fail(fmt.Errorf("backup format %d: this certmail reads format %d", man.Format, backupFormat))
			}
		case man == nil:
			return fail(fmt.Errorf("%s is not a certmail backup (no manifest first)", file))
		case strings.HasPrefix(h.Name, backupFilesDir):
			name := strings.TrimPrefix(h.Name, backupFilesDir)
			// Only plain names: an archive must not write outside DIR.
			if name == "" || name != filepath.Base(name) || name == "." || name == ".." || isBadgerFile(name) {
				return fail(fmt.Errorf("backup: refusing file name %q", h.Name))
			}
			data, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			if err != nil {
				return fail(fmt.Errorf("backup: %s: %w", name, err))
			}
			if err := os.WriteFile(filepath.Join(cfg.Data, name), data, 0o600); err != nil {
				return fail(err)
			}
		case h.Name == fmt.Sprintf("%s%06d", backupStorePrefix, chunks):
			if pw == nil {
				startLoad()
			}
			n, err := io.Copy(pw, tr)
			if err != nil {
				return fail(fmt.Errorf("restoring the store: %w", err))
			}
			chunks++
			bytes += n
		case h.Name == backupTrailerName:
			trailer = new(backupTrailer)
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(trailer); err != nil {
				return fail(fmt.Errorf("backup trailer: %w", err))
			}
			if trailer.Chunks != chunks || trailer.Bytes != bytes {
				return fail(fmt.Errorf("backup: the store has %d chunks (%d bytes), the trailer says %d (%d)", chunks, bytes, trailer.Chunks, trailer.Bytes))
			}
		default:
			return fail(fmt.Errorf("backup: unexpected entry %q", h.Name))
		}
	}
	if trailer == nil {
		return fail(fmt.Errorf("%s ends before its trailer (truncated?)", file))
	}
	if err := r.Close(); err != nil { // checks an encrypted archive's end
		return fail(err)
	}
	if pw == nil {
		startLoad() // an empty store still gets created
	}
	pw.Close()
	if err := <-loadDone; err != nil {
		pw = nil
		return fail(err)
	}
	return man, trailer, nil
}
