package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"certmail/backup"
	"certmail/config"
	"certmail/mailbox"
	"certmail/progress"
)

// `certmail migrate`: flags and printing; the copy and the check are
// package backup's (migrate.go).

func newMigrateCmd(e *env) *cobra.Command {
	var from, to, cfgFile string
	var check, discard bool
	c := &cobra.Command{
		Use:   "migrate --from SRC --to DST",
		Short: "copy a store between a data directory and PostgreSQL, and check the copy",
		Long: `Copies every record of the store SRC into DST, which must be empty, then
compares the two: key counts under every prefix and the SHA-256 of every
message body and record. SRC and DST are each a data directory (Badger) or
a postgres:// URL; the URL carries no password (it comes from a passfile:
passfile= in the URL, or PGPASSFILE). No server may be running on SRC or
DST. --config names the configuration whose encryption_key_file opens an
encrypted data directory (and encrypts a new one). --check only compares.
Exits 1 if the stores differ.

Every record is copied as it is: mailboxes keep their UIDVALIDITY, UIDs and
MODSEQs, and IMAP clients their caches (a restore, which goes back in time,
gives new UIDVALIDITYs instead). The copy is all or nothing: if it fails or
is stopped (Ctrl-C), what it copied is deleted again; if DST went away
meanwhile, what was copied stays, marked unfinished, and no server opens
it: run the same command again with --discard-incomplete once it answers.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			return status(runMigrate(e, from, to, cfgFile, check, discard))
		},
	}
	c.Flags().StringVar(&from, "from", "", "source store: a data `directory` or a postgres:// URL")
	c.Flags().StringVar(&to, "to", "", "destination store: a new data `directory` or a postgres:// URL of an empty database")
	c.Flags().StringVar(&cfgFile, "config", "", "configuration `file` (TOML) whose encryption_key_file opens a data directory")
	c.Flags().BoolVar(&check, "check", false, "compare SRC and DST only, copying nothing")
	c.Flags().BoolVar(&discard, "discard-incomplete", false, "first empty DST if it holds an earlier restore or migration that did not finish (and only then)")
	c.MarkFlagRequired("from")
	c.MarkFlagRequired("to")
	return c
}

func runMigrate(e *env, from, to, cfgFile string, check, discard bool) int {
	fail := func(err error) int {
		fmt.Fprintf(e.stderr, "certmail migrate: %v\n", err)
		return exitFailure
	}
	if from == to {
		return fail(fmt.Errorf("--from and --to are the same store"))
	}
	var key []byte
	if cfgFile != "" {
		cfg, err := config.Load(cfgFile)
		if err != nil {
			return fail(err)
		}
		if cfg.EncryptionKeyFile != "" {
			if key, err = config.ReadEncryptionKey(cfg.EncryptionKeyFile); err != nil {
				return fail(err)
			}
		}
	}
	// Ctrl-C stops the copy, which then deletes what it wrote; a second
	// one kills the process (DST stays marked unfinished).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := backup.OpenStore(ctx, from, backup.OpenOptions{Key: key, Logger: logger})
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	dst, err := backup.OpenStore(ctx, to, backup.OpenOptions{Key: key, Create: !check, DiscardIncomplete: discard, Logger: logger})
	if err != nil {
		return fail(err)
	}
	defer dst.Close()
	name := func(s string) string { return backup.RedactURL(s) }
	if !check {
		var total int64
		if !config.IsStoreURL(from) {
			total = dataDirSize(from)
		}
		meter := newMeter(e, "migrate", total, true)
		pairs, size, err := backup.Copy(ctx, src, dst, backup.CopyOptions{Count: meter, Source: name(from), DiscardIncomplete: discard})
		if err != nil {
			meter.Abort()
			if errors.Is(err, mailbox.ErrIncomplete) {
				err = fmt.Errorf("%w\n%s holds part of a restore or migration, marked unfinished: no server opens it. Run this command again with --discard-incomplete (once it answers), which empties it first", err, name(to))
			} else {
				err = fmt.Errorf("%w\nnothing was left in %s: it is as it was", err, name(to))
				if !config.IsStoreURL(to) {
					err = fmt.Errorf("%w (a data directory: remove it, or use --discard-incomplete, before trying again)", err)
				}
			}
			return fail(err)
		}
		_, took := meter.Done()
		fmt.Fprintf(e.stdout, "copied %s (%s) from %s to %s in %s, %s\n", records(pairs), progress.Bytes(size),
			name(from), name(to), progress.Elapsed(took), progress.Rate(rate(size, took)))
		if !config.IsStoreURL(from) {
			if config.IsStoreURL(to) {
				if files, _ := backup.DataFiles(from); len(files) > 0 {
					fmt.Fprintf(e.stdout, "not in the store, left in %s: %s (keep them in the data directory the server uses)\n", from, strings.Join(files, ", "))
				}
			} else if files, err := backup.CopyDataFiles(from, to); err != nil {
				return fail(err)
			} else if len(files) > 0 {
				fmt.Fprintf(e.stdout, "copied the data directory's files: %s\n", strings.Join(files, ", "))
			}
		}
	}
	rep, err := backup.Compare(src, dst)
	if err != nil {
		return fail(err)
	}
	printMigrateReport(e, rep)
	if !rep.OK() {
		fmt.Fprintf(e.stderr, "certmail migrate: %s and %s differ\n", name(from), name(to))
		return exitFailure
	}
	return exitOK
}

// printMigrateReport prints Compare's census in human units, the prefixes whose
// counts differ marked, then the mismatches.
func printMigrateReport(e *env, r *backup.Report) {
	w := e.stdout
	verdict := "identical"
	if !r.OK() {
		verdict = "DIFFERENT"
	}
	fmt.Fprintf(w, "check: %s: %s (%s) in the source, %s (%s) in the destination\n", verdict,
		records(r.Source.Keys), progress.Bytes(r.Source.Bytes), records(r.Dest.Keys), progress.Bytes(r.Dest.Bytes))
	fmt.Fprintf(w, "  %-12s %10s %10s %10s\n", "prefix", "source", "dest", "size")
	seen := map[string]bool{}
	row := func(p backup.PrefixCount) {
		if seen[p.Prefix] {
			return
		}
		seen[p.Prefix] = true
		d := r.Dest.Count(p.Prefix)
		mark := ""
		if d.Keys != r.Source.Count(p.Prefix).Keys || d.Bytes != r.Source.Count(p.Prefix).Bytes {
			mark = "  <- differs"
		}
		label := p.Prefix
		if label == "" {
			label = "(unclaimed)"
		}
		fmt.Fprintf(w, "  %-12s %10d %10d %10s%s\n", label, r.Source.Count(p.Prefix).Keys, d.Keys, progress.Bytes(r.Source.Count(p.Prefix).Bytes), mark)
	}
	for _, p := range r.Source.Prefixes {
		row(p)
	}
	for _, p := range r.Dest.Prefixes {
		row(p)
	}
	bodies := "the SHA-256 of each equal"
	if r.BodyMismatches > 0 {
		bodies = fmt.Sprintf("%d differ", r.BodyMismatches)
	}
	fmt.Fprintf(w, "  message bodies: %d (%s), %s\n", r.Bodies, progress.Bytes(r.BodyBytes), bodies)
	others := "the SHA-256 of each equal"
	if r.OtherMismatches > 0 {
		others = fmt.Sprintf("%d differ", r.OtherMismatches)
	}
	fmt.Fprintf(w, "  other records: %d, %s\n", r.Source.Keys-r.Bodies, others)
	for _, m := range r.Mismatches {
		fmt.Fprintf(w, "  %-7s %s\n", m.What, m.Key)
	}
	if n := r.BodyMismatches + r.OtherMismatches; n > int64(len(r.Mismatches)) {
		fmt.Fprintf(w, "  … and %d more\n", n-int64(len(r.Mismatches)))
	}
}
