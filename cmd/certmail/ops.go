package main

// Operations (issue 7): `certmail tls selfsigned`, `certmail backup` and
// `certmail restore`, the admin methods behind them, /healthz and
// Thunderbird autoconfig on the HTTP listener, the IMAP abuse limits from
// the config, and sd_notify for systemd's Type=notify.

import (
	"archive/tar"
	"bytes"
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
	"time"

	"certmail/admin"
	"certmail/autoconfig"
	"certmail/config"
	"certmail/imapsrv"
	"certmail/mailbox"
)

// ---- certmail tls selfsigned ----

func cmdTLS(args []string, e *env) int {
	if len(args) == 0 || args[0] != "selfsigned" {
		fmt.Fprintln(e.stderr, "usage: certmail tls selfsigned --host NAME[,NAME...] --out DIR [--days N] [--force]")
		return exitUsage
	}
	fs := newFlagSet("tls selfsigned", e)
	hosts := fs.String("host", "", "host `names` and IP addresses the certificate is for, comma-separated")
	out := fs.String("out", "", "`directory` to write cert.pem and key.pem to")
	days := fs.Int("days", 365, "validity in `days`")
	force := fs.Bool("force", false, "overwrite existing files")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return exitUsage
	}
	if len(pos) != 0 || *hosts == "" || *out == "" || *days < 1 {
		fmt.Fprintln(e.stderr, "usage: certmail tls selfsigned --host NAME[,NAME...] --out DIR [--days N] [--force]")
		return exitUsage
	}
	certPEM, keyPEM, err := selfSigned(strings.Split(*hosts, ","), time.Duration(*days)*24*time.Hour)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail tls selfsigned: %v\n", err)
		return exitFailure
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintf(e.stderr, "certmail tls selfsigned: %v\n", err)
		return exitFailure
	}
	certFile, keyFile := filepath.Join(*out, "cert.pem"), filepath.Join(*out, "key.pem")
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
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
		LoginFreeFailures:   l.LoginFreeFailures,
		LoginMaxFailures:    l.LoginMaxFailures,
		LoginDelay:          time.Duration(l.LoginDelay),
		LoginLockout:        time.Duration(l.LoginLockout),
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
	o := autoconfig.Options{Domains: cfg.Domains, DisplayName: ac.DisplayName}
	o.IMAP = autoconfig.Server{Host: ac.IMAPHost, Port: ac.IMAPPort, SocketType: ac.IMAPSocketType}
	if o.IMAP.Host == "" {
		o.IMAP.Host = cfg.Hostname
	}
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
	if ac.SMTPHost != "" {
		o.SMTP = &autoconfig.Server{Host: ac.SMTPHost, Port: ac.SMTPPort, SocketType: ac.SMTPSocketType}
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

// A backup is a tar archive: backupManifest first, then the data
// directory's own files (files/NAME: the gateway's signing key), then the
// store as Badger's backup stream (store.badger), last so that restore
// can stream it straight into a new store. When the store is encrypted at
// rest, the whole archive is encrypted with the same key (backupcrypt.go).
const (
	backupManifestName = "certmail-backup.json"
	backupStoreName    = "store.badger"
	backupFilesDir     = "files/"
	backupFormat       = 1
)

type backupManifest struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	// Version is the store version the snapshot is consistent at.
	Version uint64   `json:"version"`
	Files   []string `json:"files"`
}

// BackupParams are the params of ops.backup.
type BackupParams struct {
	// Path is where the server writes the archive: absolute, and new.
	Path string `json:"path"`
}

// BackupResult says what ops.backup wrote.
type BackupResult struct {
	Path      string   `json:"path"`
	Bytes     int64    `json:"bytes"`
	Version   uint64   `json:"version"`
	Files     []string `json:"files"`
	Encrypted bool     `json:"encrypted"`
}

// addOpsMethods registers ops.backup: the server (or a local process when
// none runs) writes the backup, as only the process holding the store can
// read it.
func (s *services) addOpsMethods(m admin.Methods) {
	m["ops.backup"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p BackupParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		if !filepath.IsAbs(p.Path) {
			return nil, fmt.Errorf("%w: backup path %q is not absolute", admin.ErrBadRequest, p.Path)
		}
		return writeBackup(ctx, s.certified.Store(), s.cfg, p.Path)
	}
}

// writeBackup writes the archive to path (which must not exist) through a
// temporary file beside it, renamed into place once complete and synced:
// a crash leaves no half archive under the final name.
func writeBackup(ctx context.Context, store *mailbox.Store, cfg *config.Config, path string) (*BackupResult, error) {
	var key []byte
	if cfg.EncryptionKeyFile != "" {
		var err error
		if key, err = config.ReadEncryptionKey(cfg.EncryptionKeyFile); err != nil {
			return nil, err
		}
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%s already exists", path)
	}
	dir := filepath.Dir(path)
	// The Badger stream's size must be known before it goes into the tar,
	// so it is written to a scratch file first (encrypted if the store is:
	// plaintext mail must not land on disk).
	scratch, err := os.CreateTemp(dir, ".certmail-backup-store-*")
	if err != nil {
		return nil, fmt.Errorf("backup scratch file: %w", err)
	}
	defer os.Remove(scratch.Name())
	defer scratch.Close()
	scratchW, err := newBackupWriter(scratch, key)
	if err != nil {
		return nil, err
	}
	// The size in the tar header is the plaintext stream's.
	counted := &countingWriter{w: scratchW}
	version, err := store.Backup(counted)
	if err == nil {
		err = scratchW.Close()
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	files, err := dataDirFiles(cfg.Data)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".certmail-backup-*")
	if err != nil {
		return nil, fmt.Errorf("creating backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // what stays is the link made below
	defer tmp.Close()
	if err := tmp.Chmod(0o600); err != nil {
		return nil, err
	}
	out, err := newBackupWriter(tmp, key)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(out)
	man, _ := json.MarshalIndent(backupManifest{Format: backupFormat, Created: time.Now().UTC(), Version: version, Files: files}, "", "  ")
	if err := tarAdd(tw, backupManifestName, int64(len(man)), bytes.NewReader(man)); err != nil {
		return nil, err
	}
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(cfg.Data, name))
		if err != nil {
			return nil, fmt.Errorf("backing up %s: %w", name, err)
		}
		if err := tarAdd(tw, backupFilesDir+name, int64(len(data)), bytes.NewReader(data)); err != nil {
			return nil, err
		}
	}
	if _, err := scratch.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	scratchR, err := newBackupReader(scratch, key)
	if err != nil {
		return nil, err
	}
	size := counted.n
	if err := tarAdd(tw, backupStoreName, size, scratchR); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, err
	}
	st, err := tmp.Stat()
	if err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// Link, not rename: it fails if path appeared meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("creating backup: %w", err)
	}
	return &BackupResult{Path: path, Bytes: st.Size(), Version: version, Files: files, Encrypted: key != nil}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func tarAdd(tw *tar.Writer, name string, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o600, ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if n, err := io.Copy(tw, r); err != nil || n != size {
		return fmt.Errorf("backup: %s: wrote %d of %d bytes: %v", name, n, size, err)
	}
	return nil
}

// dataDirFiles are the regular files of the data directory that are not
// Badger's: they are not in the store's backup stream but belong to the
// data (the gateway's signing key, without which old evidence no longer
// verifies under the same key).
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

func cmdBackup(args []string, e *env) int {
	fs := newFlagSet("backup", e)
	var df dirFlags
	df.register(fs)
	out := fs.String("out", "", "backup `file` to create")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 0 || *out == "" {
		fmt.Fprintln(e.stderr, "usage: certmail backup --out FILE [--config FILE] [--data DIR]")
		return exitUsage
	}
	// The server writes the file, so it gets an absolute path.
	path, err := filepath.Abs(*out)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail backup: %v\n", err)
		return exitFailure
	}
	return withOps(e, &df, "backup", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		var res BackupResult
		if err := ops.Call(ctx, "ops.backup", BackupParams{Path: path}, &res); err != nil {
			return err
		}
		enc := ""
		if res.Encrypted {
			enc = ", encrypted with the store's key"
		}
		fmt.Fprintf(e.stdout, "wrote %s (%d bytes%s): store at version %d, files %s\n",
			res.Path, res.Bytes, enc, res.Version, strings.Join(res.Files, ", "))
		return nil
	})
}

func cmdRestore(args []string, e *env) int {
	fs := newFlagSet("restore", e)
	var df dirFlags
	df.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || df.data == "" && df.config == "" {
		fmt.Fprintln(e.stderr, "usage: certmail restore FILE --data DIR [--config FILE]\n(DIR must be new or empty; the config's encryption_key_file decrypts the backup and encrypts the new store)")
		return exitUsage
	}
	cfg, err := df.load()
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail restore: %v\n", err)
		return exitFailure
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := restoreBackup(cfg, pos[0], logger)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail restore: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "restored %s into %s: store at version %d, files %s\n", pos[0], cfg.Data, res.Version, strings.Join(res.Files, ", "))
	return exitOK
}

// restoreBackup unpacks the archive at file into cfg.Data, which must be
// new or empty: restoring over live data would mix two histories.
func restoreBackup(cfg *config.Config, file string, logger *slog.Logger) (*backupManifest, error) {
	if ents, err := os.ReadDir(cfg.Data); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("data directory %s is not empty: restore into a new directory", cfg.Data)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	so, err := storeOptions(cfg, logger)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := newBackupReader(f, so.EncryptionKey)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	tr := tar.NewReader(r)
	var man *backupManifest
	storeDone := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading backup: %w", err)
		}
		switch {
		case h.Name == backupManifestName:
			man = new(backupManifest)
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(man); err != nil {
				return nil, fmt.Errorf("backup manifest: %w", err)
			}
			if man.Format != backupFormat {
				return nil, fmt.Errorf("backup format %d: this certmail reads format %d", man.Format, backupFormat)
			}
		case man == nil:
			return nil, fmt.Errorf("%s is not a certmail backup (no manifest first)", file)
		case strings.HasPrefix(h.Name, backupFilesDir):
			name := strings.TrimPrefix(h.Name, backupFilesDir)
			// Only plain names: an archive must not write outside DIR.
			if name == "" || name != filepath.Base(name) || name == "." || name == ".." || isBadgerFile(name) {
				return nil, fmt.Errorf("backup: refusing file name %q", h.Name)
			}
			data, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			if err != nil {
				return nil, fmt.Errorf("backup: %s: %w", name, err)
			}
			if err := os.WriteFile(filepath.Join(cfg.Data, name), data, 0o600); err != nil {
				return nil, err
			}
		case h.Name == backupStoreName:
			if err := mailbox.Restore(so, tr); err != nil {
				return nil, err
			}
			storeDone = true
		default:
			return nil, fmt.Errorf("backup: unexpected entry %q", h.Name)
		}
	}
	if !storeDone {
		return nil, fmt.Errorf("%s holds no store (truncated?)", file)
	}
	if err := r.Close(); err != nil { // checks an encrypted archive's end
		return nil, err
	}
	return man, nil
}
