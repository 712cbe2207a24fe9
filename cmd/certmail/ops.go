package main

// Operations (issue 7): `certmail tls selfsigned`, `certmail backup` and
// `certmail restore`, the admin methods behind them, /healthz and
// Thunderbird autoconfig on the HTTP listener, the IMAP abuse limits from
// the config, and sd_notify for systemd's Type=notify.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"certmail/admin"
	"certmail/backup"
	"certmail/config"
	"certmail/mailbox"
	"certmail/node"
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
		// A database's size is not the data directory's: no estimate.
		var estimate int64
		if !node.Shared(cfg) {
			estimate = dataDirSize(cfg.Data)
		}
		meter := newMeter(e, "backup", estimate, true)
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
	var discard bool
	c := &cobra.Command{
		Use:   "restore FILE --data DIR",
		Short: "restore a backup into a new data directory or an empty database (--config: its encryption_key_file)",
		Long: `Restores a backup into a new data directory, or into the empty PostgreSQL
database of --store or the config's [store] url (the data directory's own
files still go into DIR). DIR must be new or empty, the database empty; the
config's encryption_key_file decrypts the backup and encrypts the new store.

A restore is all or nothing: if it fails or is stopped (Ctrl-C), what it
wrote is deleted again. If the database went away meanwhile, what it wrote
stays, marked unfinished, and no server opens it: run the same command
again with --discard-incomplete once the database answers.

Every restored mailbox gets a new UIDVALIDITY, so that IMAP clients, which
may have seen newer mail than the backup's, resynchronise it rather than
trust their cache (UIDs and MODSEQs will be handed out again).`,
		Args: exactArgs("FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			if df.data == "" && df.config == "" {
				return usageError("give the new data directory (--data DIR, or a --config naming it)")
			}
			return status(runRestore(e, &df, args[0], discard))
		},
	}
	df.register(c.Flags())
	c.Flags().BoolVar(&discard, "discard-incomplete", false, "first empty a store holding an earlier restore or migration that did not finish (and only such a store)")
	return c
}

func runRestore(e *env, df *dirFlags, file string, discard bool) int {
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
	// Ctrl-C stops the restore, which then deletes what it wrote; a
	// second one kills the process (the store stays marked unfinished).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	so, err := node.RestoreOptions(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail restore: %v\n", err)
		return exitFailure
	}
	into := cfg.Data
	if node.Shared(cfg) {
		into = node.StoreName(cfg) + " (files into " + cfg.Data + ")"
	}
	meter := newMeter(e, "restore", size, false)
	res, err := backup.Restore(ctx, so, file, backup.RestoreOptions{Count: meter, DiscardIncomplete: discard})
	if err != nil {
		meter.Abort()
		fmt.Fprintf(e.stderr, "certmail restore: %v\n", err)
		switch {
		case errors.Is(err, mailbox.ErrIncomplete):
			fmt.Fprintf(e.stderr, "certmail restore: %s holds part of a restore or migration, marked unfinished: no server opens it. Run this command again with --discard-incomplete (once the database answers), which empties it first.\n", into)
		default:
			fmt.Fprintf(e.stderr, "certmail restore: nothing was restored: %s is as it was\n", into)
		}
		return exitFailure
	}
	_, took := meter.Done()
	man, tr := res.Manifest, res.Trailer
	store := "store of " + records(tr.Pairs)
	if tr.Version != 0 { // a backup of format 1, Badger's stream
		store = fmt.Sprintf("store at version %d", tr.Version)
	}
	fmt.Fprintf(e.stdout, "restored %s (%s) into %s in %s, %s: %s (%s), files %s\n",
		file, progress.Bytes(size), into, progress.Elapsed(took), progress.Rate(rate(size, took)),
		store, progress.Bytes(tr.Bytes), strings.Join(man.Files, ", "))
	if r := res.Renumbered; r != nil && r.Mailboxes > 0 {
		fmt.Fprintf(e.stdout, "new UIDVALIDITY for each of the %d mailboxes (%d to %d): IMAP clients drop what they cached and fetch the mailboxes again\n",
			r.Mailboxes, r.First, r.Last)
	}
	return exitOK
}

// records is a count of key-value pairs as a summary prints it.
func records(n int64) string {
	if n == 1 {
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}
