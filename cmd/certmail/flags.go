package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"certmail/admin"
	"certmail/buildinfo"
	"certmail/config"
	"certmail/delivery"
	"certmail/imapsrv"
	"certmail/mailbox"
)

// dirFlags are the flags every command that touches a data directory has.
type dirFlags struct {
	config string
	data   string
}

func (d *dirFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&d.config, "config", "", "configuration `file` (TOML)")
	fs.StringVar(&d.data, "data", "", "data `directory` (default: $"+config.EnvData+", the config's data, else "+config.DefaultData+")")
}

// load returns the configuration: the file's if given, else the
// defaults. The data directory is --data, else $CERTMAIL_DATA, else the
// file's data, else the default (config.ResolveData).
func (d *dirFlags) load() (*config.Config, error) {
	cfg := config.Default()
	if d.config != "" {
		var err error
		if cfg, err = config.Load(d.config); err != nil {
			return nil, err
		}
	}
	cfg.Data = config.ResolveData(d.data, os.Getenv(config.EnvData), cfg.Data)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// storeOptions are the store settings every process opening the data
// directory uses, so that a message delivered by the CLI gets the same
// IMAP summary as one delivered by the server, and an encrypted store is
// opened with its key (encryption_key_file) by every process alike.
func storeOptions(cfg *config.Config, logger *slog.Logger) (mailbox.Options, error) {
	o := mailbox.Options{
		Dir:          cfg.Data,
		Logger:       logger,
		Summarize:    imapsrv.Summarize,
		MaxMailboxes: cfg.Limits.MaxMailboxes,
		IndexIdle:    time.Duration(cfg.Limits.IndexIdle),
		DiskReserve:  int64(cfg.Limits.DiskReserve),
		// The quota defaults: the CLI's deliver enforces them too.
		QuotaStorage:  int64(cfg.Limits.QuotaStorage),
		QuotaMessages: cfg.Limits.QuotaMessages,
	}
	if o.DiskReserve == 0 {
		o.DiskReserve = -1 // disk_reserve = 0: no check
	}
	if cfg.EncryptionKeyFile != "" {
		key, err := config.ReadEncryptionKey(cfg.EncryptionKeyFile)
		if err != nil {
			return o, err
		}
		o.EncryptionKey = key
	}
	return o, nil
}

func deliveryOptions(cfg *config.Config, logger *slog.Logger) delivery.Options {
	return delivery.Options{
		MaxMessageBytes: int64(cfg.Limits.MaxMessageSize),
		Logger:          logger,
	}
}

// connectOps reaches the data directory: the server's admin socket, or the
// store itself. create says whether a missing data directory may be made
// (only for commands that create something).
func connectOps(ctx context.Context, cfg *config.Config, e *env, create bool) (admin.Ops, error) {
	// Only serve and user add make a store: any other command run from
	// the wrong directory (the default is relative) would otherwise make
	// a second store with its own gateway key.
	exists, err := mailbox.Exists(cfg.Data)
	if err != nil {
		return nil, err
	}
	if !exists {
		where := absPath(cfg.Data)
		if !create {
			return nil, fmt.Errorf("no certmail store in %s (the data directory comes from --data, $%s or the config file's data, default %s; `certmail user add` or `certmail serve` creates one)", where, config.EnvData, config.DefaultData)
		}
		fmt.Fprintf(e.stderr, "certmail: creating a new store in %s\n", where)
		if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	}
	// A command run by hand should print its own errors, not Badger's
	// chatter.
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return admin.Connect(ctx, admin.ConnectOptions{
		Socket: admin.SocketPath(cfg.Data),
		OpenLocal: func() (*admin.Local, error) {
			so, err := storeOptions(cfg, logger)
			if err != nil {
				return nil, err
			}
			so.GCInterval = -1 // a short-lived process leaves GC to the server
			var svcs *services
			l, err := admin.OpenLocal(so, deliveryOptions(cfg, logger), func(st *mailbox.Store, o *delivery.Options) error {
				var err error
				if svcs, err = openServices(cfg, logger, st, nil); err != nil {
					return err
				}
				*o = svcs.deliveryOptions(*o)
				return nil
			})
			if err != nil {
				return nil, err
			}
			l.Methods = svcs.adminMethods()
			return l, nil
		},
	})
}

// absPath is dir as an absolute path, for messages that say where.
func absPath(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the module version, VCS revision and Go version (also serve's first log line)",
		Args:  exactArgs(),
		Run: func(c *cobra.Command, args []string) {
			fmt.Fprintln(e.stdout, buildinfo.Read())
		},
	}
}

func newConfigCmd(e *env) *cobra.Command {
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "validate a configuration file and the files it names (TLS certificate and key, encryption key)",
		Long: `Validates a configuration file: its syntax, every key (an unknown or
misspelled key is an error naming its line), the values, and the files
serve reads at start (the TLS certificate and key, which must load and
match, and the encryption key file). Exit status 0 and "FILE: ok" if serve
would accept it.`,
		Args: exactArgs("FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0])
			if err == nil {
				// The files serve reads at start, by the same function.
				err = cfg.CheckFiles()
			}
			if err != nil {
				fmt.Fprintln(e.stderr, err)
				return exitStatus(exitFailure)
			}
			fmt.Fprintf(e.stdout, "%s: ok\n", filepath.Clean(args[0]))
			return nil
		},
	}
	return groupCmd("config", "check a configuration file", check)
}

// readLimited reads all of r, failing once it exceeds max bytes.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", delivery.ErrTooLarge, max)
	}
	return b, nil
}
