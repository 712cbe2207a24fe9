package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"certmail/admin"
	"certmail/backup"
	"certmail/config"
	"certmail/delivery"
	"certmail/imapsrv"
	"certmail/kv"
	"certmail/kv/pgkv"
	"certmail/mailbox"
)

// StoreOptions are the store settings every process opening the data
// directory uses, so that a message delivered by the CLI gets the same
// IMAP summary as one delivered by the server, and an encrypted store is
// opened with its key (encryption_key_file) by every process alike.
func StoreOptions(cfg *config.Config, logger *slog.Logger) (mailbox.Options, error) {
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

		FollowInterval: time.Duration(cfg.Store.FollowInterval),
		// A node alone on its database, or the one writing, answers
		// from memory (kv/pgkv/sole.go); a CLI command (Brief) never
		// holds the lease.
		SoleLease: cfg.Store.SoleLease,
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

// BaseDeliveryOptions are the delivery settings from the configuration;
// Services.DeliveryOptions adds the services' parts.
func BaseDeliveryOptions(cfg *config.Config, logger *slog.Logger) delivery.Options {
	return delivery.Options{
		MaxMessageBytes: int64(cfg.Limits.MaxMessageSize),
		Logger:          logger,
	}
}

// Shared reports whether cfg's store is a PostgreSQL database, which
// every node and every command opens at once, rather than the data
// directory, which one process at a time opens.
func Shared(cfg *config.Config) bool { return cfg.Store.URL != "" }

// Name is this node's name: cfg's node, else the machine's host name.
func Name(cfg *config.Config) string {
	if cfg.Node != "" {
		return cfg.Node
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "certmail"
}

// StoreName is the store as messages and logs name it: the data
// directory, or the URL without its query or any password.
func StoreName(cfg *config.Config) string {
	if Shared(cfg) {
		return backup.RedactURL(cfg.Store.URL)
	}
	return AbsPath(cfg.Data)
}

// openShared connects to cfg's PostgreSQL store as app (PostgreSQL's
// application_name, which pg_stat_activity shows, unless the URL sets
// one), with the password from [store] password_file, or else from
// PGPASSFILE or ~/.pgpass: never from the URL, which config refuses with
// one in it.
func openShared(ctx context.Context, cfg *config.Config, app string) (*pgkv.Engine, error) {
	if err := config.CheckStoreURL(cfg.Store.URL); err != nil {
		return nil, fmt.Errorf("store %s: %w", backup.RedactURL(cfg.Store.URL), err)
	}
	var password string
	if cfg.Store.PasswordFile != "" {
		var err error
		if password, err = config.ReadPasswordFile(cfg.Store.PasswordFile); err != nil {
			return nil, err
		}
	}
	dsn := cfg.Store.URL
	if u, err := url.Parse(dsn); err == nil && !u.Query().Has("application_name") {
		q := u.Query()
		q.Set("application_name", app)
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	e, err := pgkv.Open(ctx, dsn, pgkv.Options{Password: password})
	if err != nil {
		return nil, fmt.Errorf("opening the store %s: %w", backup.RedactURL(cfg.Store.URL), err)
	}
	return e, nil
}

// ConnectOptions say how Connect reaches the store.
type ConnectOptions struct {
	// Create allows making a new store (only for commands that create
	// something: user add).
	Create bool
	// Logger gets the store's own warnings.
	Logger *slog.Logger
	// Creating, if not nil, is told where a new store is being made, for
	// the command to say so.
	Creating func(where string)
}

// Connect reaches the store for a command other than serve: the server's
// admin socket, or the store itself when no server runs.
func Connect(ctx context.Context, cfg *config.Config, o ConnectOptions) (admin.Ops, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if Shared(cfg) {
		return connectShared(ctx, cfg, logger, o)
	}
	// Only serve and user add make a store: any other command run from
	// the wrong directory (the default is relative) would otherwise make
	// a second store with its own gateway key.
	exists, err := mailbox.Exists(cfg.Data)
	if err != nil {
		return nil, err
	}
	if !exists {
		where := AbsPath(cfg.Data)
		if !o.Create {
			return nil, fmt.Errorf("no certmail store in %s (the data directory comes from --data, $%s or the config file's data, default %s; `certmail user add` or `certmail serve` creates one)", where, config.EnvData, config.DefaultData)
		}
		if o.Creating != nil {
			o.Creating(where)
		}
		if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	}
	return admin.Connect(ctx, admin.ConnectOptions{
		Socket: admin.SocketPath(cfg.Data),
		OpenLocal: func() (*admin.Local, error) {
			so, err := StoreOptions(cfg, logger)
			if err != nil {
				return nil, err
			}
			so.Brief = true // a short-lived process leaves upkeep to the server
			return openLocal(cfg, logger, so)
		},
	})
}

// connectShared opens a PostgreSQL store for a command: directly, with
// no admin socket, whether any node runs or not (every node follows the
// database's commits, so a command's writes reach them as any node's do).
func connectShared(ctx context.Context, cfg *config.Config, logger *slog.Logger, o ConnectOptions) (admin.Ops, error) {
	e, err := openShared(ctx, cfg, "certmail-cli")
	if err != nil {
		return nil, err
	}
	empty, err := kv.IsEmpty(e)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("reading the store %s: %w", StoreName(cfg), err)
	}
	if empty {
		if !o.Create {
			e.Close()
			return nil, fmt.Errorf("no certmail store in %s (the database is empty; `certmail user add` or `certmail serve` with this store creates one)", StoreName(cfg))
		}
		if o.Creating != nil {
			o.Creating(StoreName(cfg))
		}
	}
	so, err := StoreOptions(cfg, logger)
	if err != nil {
		e.Close()
		return nil, err
	}
	so.Engine = e
	// A command publishes its changes to the nodes, follows none, and
	// leaves the upkeep (orphaned messages) to them.
	so.Brief = true
	return openLocal(cfg, logger, so)
}

// openLocal opens the store with every service on it, for a command run
// without a server: a `certmail deliver` certifies mail just as the
// server does.
func openLocal(cfg *config.Config, logger *slog.Logger, so mailbox.Options) (*admin.Local, error) {
	var svcs *Services
	l, err := admin.OpenLocal(so, BaseDeliveryOptions(cfg, logger), func(st *mailbox.Store, o *delivery.Options) error {
		var err error
		if svcs, err = OpenServices(cfg, logger, st, nil); err != nil {
			return err
		}
		*o = svcs.DeliveryOptions(*o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.Methods = svcs.AdminMethods()
	return l, nil
}

// AbsPath is dir as an absolute path, for messages that say where.
func AbsPath(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}

// RestoreOptions are the store options `certmail restore` loads a backup
// with: the data directory's, or, on a shared store, the PostgreSQL
// database (which must be empty; the backup's files, the gateway key, go
// into the data directory).
func RestoreOptions(ctx context.Context, cfg *config.Config, logger *slog.Logger) (mailbox.Options, error) {
	so, err := StoreOptions(cfg, logger)
	if err != nil || !Shared(cfg) {
		return so, err
	}
	e, err := openShared(ctx, cfg, "certmail-cli")
	if err != nil {
		return so, err
	}
	so.Engine = e
	return so, nil
}
