package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"certmail/admin"
	"certmail/buildinfo"
	"certmail/config"
	"certmail/delivery"
	"certmail/node"
)

// dirFlags are the flags every command that touches the store has.
type dirFlags struct {
	config string
	data   string
	store  string
}

func (d *dirFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&d.config, "config", "", "configuration `file` (TOML)")
	fs.StringVar(&d.data, "data", "", "data `directory` (default: $"+config.EnvData+", the config's data, else "+config.DefaultData+")")
	fs.StringVar(&d.store, "store", "", "PostgreSQL store `URL` postgres://USER@HOST:PORT/DB, no password in it (default: the config's [store] url; none: the data directory)")
}

// load returns the configuration: the file's if given, else the
// defaults. The data directory is --data, else $CERTMAIL_DATA, else the
// file's data, else the default (config.ResolveData); the store is
// --store, else the file's [store] url.
func (d *dirFlags) load() (*config.Config, error) {
	cfg := config.Default()
	if d.config != "" {
		var err error
		if cfg, err = config.Load(d.config); err != nil {
			return nil, err
		}
	}
	cfg.Data = config.ResolveData(d.data, os.Getenv(config.EnvData), cfg.Data)
	if d.store != "" {
		// Named as the flag the user typed, not as the config key.
		if err := config.CheckStoreURL(d.store); err != nil {
			return nil, fmt.Errorf("--store: %w", err)
		}
	}
	cfg.Store.URL = config.ResolveStore(d.store, cfg.Store.URL)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
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
		Short: "validate a configuration file and the files it names (TLS certificate and key, encryption key, database password)",
		Long: `Validates a configuration file: its syntax, every key (an unknown or
misspelled key is an error naming its line), the values, and the files
serve reads at start (the TLS certificate and key, which must load and
match, the encryption key file, and [store]'s password_file: readable by
its owner only, and the URL holding no password). Exit status 0 and
"FILE: ok" if serve would accept it; for a PostgreSQL store a second line
names the database and where its password comes from (the database itself
is not contacted).`,
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
			if node.Shared(cfg) {
				from := "PGPASSFILE or ~/.pgpass"
				if cfg.Store.PasswordFile != "" {
					from = cfg.Store.PasswordFile
				}
				fmt.Fprintf(e.stdout, "store: PostgreSQL %s, password from %s, node %s\n", node.StoreName(cfg), from, node.Name(cfg))
			}
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

// connectOps reaches the store (node.Connect); create says whether a
// missing store may be made (only for commands that create something).
func connectOps(ctx context.Context, cfg *config.Config, e *env, create bool) (admin.Ops, error) {
	return node.Connect(ctx, cfg, node.ConnectOptions{
		Create: create,
		// A command run by hand should print its own errors, not the
		// store's chatter.
		Logger:   slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Creating: func(where string) { fmt.Fprintf(e.stderr, "certmail: creating a new store in %s\n", where) },
	})
}
