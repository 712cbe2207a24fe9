package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"
)

// Store says where the store lives. With URL empty it is the Badger
// store in the data directory, opened by one process at a time; with a
// postgres:// URL it is a PostgreSQL database that any number of nodes,
// and every CLI command, open at once.
type Store struct {
	// URL is postgres://USER@HOST:PORT/DATABASE[?sslmode=...]; it must
	// not hold the password, which a URL shows to anyone who can run ps
	// or read the config. Flag: --store.
	URL string `toml:"url"`
	// PasswordFile names a file holding the database password (only the
	// password, on one line; mode 0600 or 0640). Without it the password
	// comes from PGPASSFILE or ~/.pgpass, as for psql.
	PasswordFile string `toml:"password_file"`
	// FollowInterval is how often a node reads the other nodes' changes
	// from the database when none woke it (mailbox.Options.FollowInterval):
	// how late it hears of another node's commit when a notification is
	// lost, or always on a database without LISTEN/NOTIFY (CockroachDB).
	FollowInterval Duration `toml:"follow_interval"`
	// SoleLease lets a node that is, for now, the only one writing take
	// the sole-writer lease and answer SELECT, STATUS and NOOP without
	// reading the others' changes first (mailbox.Options.SoleLease;
	// docs/operations.md). Turn it off on every node while any process
	// of a certmail without the lease still writes to the database (a
	// rolling upgrade): such a process would not ask for it.
	SoleLease bool `toml:"sole_lease"`
}

// IsStoreURL reports whether s names a PostgreSQL database rather than a
// data directory.
func IsStoreURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// ErrPasswordInURL is a store URL that carries a password.
var ErrPasswordInURL = errors.New("the URL holds a password: anyone who can run ps or read the config would see it; put it in a file named by [store] password_file (only the password, mode 0600), or in PGPASSFILE or ~/.pgpass (HOST:PORT:DATABASE:USER:PASSWORD)")

// CheckStoreURL checks a store URL: postgres:// or postgresql://, and no
// password in it. Its error never repeats the URL (it may hold the
// password).
func CheckStoreURL(s string) error {
	if !IsStoreURL(s) {
		return errors.New("want a postgres:// or postgresql:// URL (postgres://USER@HOST:5432/DATABASE)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("the URL does not parse")
	}
	if _, set := u.User.Password(); set || u.Query().Has("password") {
		return ErrPasswordInURL
	}
	if u.Host == "" && !u.Query().Has("host") {
		return errors.New("the URL names no host (postgres://USER@HOST:5432/DATABASE)")
	}
	return nil
}

// ResolveStore is the store URL a command uses: the --store flag, else the
// config file's [store] url. Empty: the data directory.
func ResolveStore(flag, file string) string {
	if flag != "" {
		return flag
	}
	return file
}

// ReadPasswordFile reads the database password from path: the file's
// first line. A file others may read is refused, as libpq refuses such a
// passfile.
func ReadPasswordFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("reading the database password: %w", err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return "", fmt.Errorf("database password file %s can be read by others (mode %v): run `chmod 600 %s`", path, fi.Mode().Perm(), path)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("database password file %s: %w", path, fs.ErrInvalid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the database password: %w", err)
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("database password file %s: the first line is empty", path)
	}
	return pw, nil
}

func (c *Config) checkStore() []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	if c.Store.URL != "" {
		if err := CheckStoreURL(c.Store.URL); err != nil {
			add("store.url", "%v", err)
		}
	}
	if c.Store.PasswordFile != "" {
		if c.Store.URL == "" {
			add("store.password_file", "is for a PostgreSQL store: set store.url too")
		} else if _, err := ReadPasswordFile(c.Store.PasswordFile); err != nil {
			add("store.password_file", "%v", err)
		}
	}
	if c.Store.FollowInterval < Duration(10*time.Millisecond) || c.Store.FollowInterval > Duration(time.Minute) {
		add("store.follow_interval", "%v: want 10ms to 1m", time.Duration(c.Store.FollowInterval))
	}
	if c.Node != "" {
		if err := checkNodeName(c.Node); err != nil {
			add("node", "%v", err)
		}
	}
	return ps
}

// checkNodeName accepts letters, digits, '-', '_' and '.', up to 40: the
// name goes into logs and PostgreSQL's application_name (63 bytes).
func checkNodeName(s string) error {
	if len(s) > 40 {
		return errors.New("at most 40 characters")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%q: letters, digits, '-', '_' and '.' only", s)
		}
	}
	return nil
}
