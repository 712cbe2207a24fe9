// Package pgtest starts private PostgreSQL clusters for tests: Debian's
// server binaries, initdb in a temporary directory, a loopback port, the
// unix socket in that directory, scram-sha-256 with the password in a
// passfile (never on a command line), and fsync and synchronous_commit on,
// so that a test sees the durability an operator gets.
//
// One cluster serves a whole test binary and each test gets a fresh
// schema of its own (its search_path), dropped when the test ends:
//
//	var pg pgtest.Shared
//
//	func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
//
//	func TestX(t *testing.T) { dsn := pg.DB(t); ... }
//
// A test that stops or breaks its server starts a cluster of its own with
// Start. When the PostgreSQL binaries are missing the tests fail, naming
// the Debian package to install; they never skip.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the name of the cluster's bootstrap superuser.
const Superuser = "postgres"

// binGlob is where Debian's postgresql-NN packages put the server
// binaries, one directory per major version.
const binGlob = "/usr/lib/postgresql/*/bin"

// Cluster is one running private PostgreSQL server.
type Cluster struct {
	dir      string // the temporary directory: data/, sock/, pgpass, log
	bin      string // the server binaries' directory
	version  string // the major version, "15"
	port     int
	passfile string
	lock     *os.File // flocked while the cluster is ours; see sweep
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the postmaster has exited
	waitErr  error         // the postmaster's exit status, once exited is closed
	stopOnce sync.Once
	seq      atomic.Int64 // names fresh databases and schemas
}

// Start starts a private cluster that is stopped and removed when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := StartCluster()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// StartCluster starts a private cluster; the caller stops it with Stop.
func StartCluster() (*Cluster, error) {
	bin, version, err := findBin()
	if err != nil {
		return nil, err
	}
	cred, owner, err := runAs()
	if err != nil {
		return nil, err
	}
	sweep(os.TempDir())
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin, version: version, passfile: filepath.Join(dir, "pgpass"), lock: lock}
	if err := c.initdb(cred, owner); err != nil {
		c.removeDir()
		return nil, err
	}
	// A port taken between our probe and the server's bind (another test
	// binary starting its cluster at the same moment) is retried on
	// another port; three collisions in a row mean something else is wrong.
	for attempt := 1; ; attempt++ {
		err = c.start(cred)
		if err == nil {
			return c, nil
		}
		if attempt == 3 || !c.portCollision() {
			c.removeDir()
			return nil, err
		}
	}
}

// dirPrefix starts the names of the clusters' temporary directories.
const dirPrefix = "pgtest-"

// lockName is the file in a cluster's directory that its test binary
// holds an exclusive flock on, from creating the directory to removing
// it. The kernel drops the lock when the process dies, however it dies.
const lockName = "owner.lock"

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// sweep removes the directories of clusters whose test binary died
// without stopping them (a panic, a -timeout, kill -9): their server died
// with it (Pdeathsig) and nobody holds their lock. A directory without a
// lock file yet is being created, unless it is old.
func sweep(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, dirPrefix+"*"))
	for _, d := range dirs {
		f, err := os.OpenFile(filepath.Join(d, lockName), os.O_RDWR, 0)
		if err != nil {
			if fi, serr := os.Stat(d); serr == nil && errors.Is(err, os.ErrNotExist) && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(d)
			}
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.RemoveAll(d)
		}
		f.Close()
	}
}

// removeDir removes the cluster's directory, then lets go of its lock.
func (c *Cluster) removeDir() error {
	err := os.RemoveAll(c.dir)
	c.lock.Close()
	if err != nil {
		return fmt.Errorf("remove %s: %w", c.dir, err)
	}
	return nil
}

// findBin returns the directory of the newest installed major version's
// server binaries.
func findBin() (dir, version string, err error) { return findBinIn(binGlob) }

func findBinIn(glob string) (dir, version string, err error) {
	dirs, _ := filepath.Glob(glob)
	type cand struct {
		dir string
		v   int
	}
	var found []cand
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		found = append(found, cand{d, v})
	}
	if len(found) == 0 {
		return "", "", fmt.Errorf("no PostgreSQL server binaries in %s: install Debian's package `postgresql` (`make test-deps` does)", glob)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].v > found[j].v })
	return found[0].dir, strconv.Itoa(found[0].v), nil
}

// runAs returns the credential the server runs under and the uid/gid that
// must own its directory. PostgreSQL refuses to run as root, and the tests
// run as root in CI: there the server runs as the Debian package's
// `postgres` user, or `nobody` where that user does not exist.
func runAs() (*syscall.Credential, [2]int, error) {
	if os.Geteuid() != 0 {
		return nil, [2]int{-1, -1}, nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return nil, [2]int{}, fmt.Errorf("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, [2]int{}, fmt.Errorf("user %s: %w", u.Username, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, [2]int{uid, gid}, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) sockDir() string { return filepath.Join(c.dir, "sock") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "postgres.log") }

// initdb creates the cluster. The superuser's password is random and
// reaches initdb through a file, and clients read it from a passfile.
func (c *Cluster) initdb(cred *syscall.Credential, owner [2]int) error {
	pw, err := randomPassword()
	if err != nil {
		return err
	}
	pwfile := filepath.Join(c.dir, "initdb-pw")
	// pgpass: host:port:database:user:password; any host, port and
	// database of this private cluster.
	files := map[string]string{
		pwfile:     pw + "\n",
		c.passfile: "*:*:*:" + Superuser + ":" + pw + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	for _, d := range []string{c.dataDir(), c.sockDir()} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	}
	if owner[0] >= 0 {
		for _, p := range []string{c.dir, c.dataDir(), c.sockDir(), pwfile} {
			if err := os.Chown(p, owner[0], owner[1]); err != nil {
				return fmt.Errorf("chown %s: %w", p, err)
			}
		}
	}
	// --no-sync: initdb's own files need no fsync, the cluster is thrown
	// away with the test; the running server does fsync (see start).
	cmd := exec.Command(filepath.Join(c.bin, "initdb"),
		"--pgdata="+c.dataDir(), "--username="+Superuser, "--pwfile="+pwfile,
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	os.Remove(pwfile)
	if err != nil {
		return fmt.Errorf("initdb (PostgreSQL %s): %w\n%s", c.version, err, out)
	}
	return nil
}

// cleanEnv is the environment of the server processes: none of the test's
// PG* variables (a PGPASSFILE or PGDATA meant for another server).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

// start runs the postmaster on a free loopback port and waits until it
// accepts connections.
func (c *Cluster) start(cred *syscall.Credential) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	return c.startOn(cred, port)
}

// startOn runs the postmaster on port.
func (c *Cluster) startOn(cred *syscall.Credential, port int) error {
	c.port = port
	logf, err := os.OpenFile(c.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("server log: %w", err)
	}
	defer logf.Close()
	// fsync and synchronous_commit are the defaults; they are named so that
	// no postgresql.conf or later default can turn them off under a test.
	cmd := exec.Command(filepath.Join(c.bin, "postgres"),
		"-D", c.dataDir(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+c.sockDir(),
		"-c", "fsync=on",
		"-c", "synchronous_commit=on",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEnv()
	// Pdeathsig: a test binary that dies (a panic, a -timeout) takes its
	// server with it; Go sets it after the credential change, which would
	// clear it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd
	c.exited = make(chan struct{})
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := c.connect(ctx, "postgres")
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("postgres (PostgreSQL %s) exited: %v\n%s", c.version, c.waitErr, c.logTail())
		case <-ctx.Done():
			c.kill()
			return fmt.Errorf("postgres did not accept connections within 60s: %v\n%s", err, c.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// portCollision reports whether the last start failed because its port
// was taken.
func (c *Cluster) portCollision() bool {
	b, _ := os.ReadFile(c.logFile())
	return bytes.Contains(b, []byte("could not bind")) || bytes.Contains(b, []byte("Address already in use"))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomPassword() (string, error) {
	b := make([]byte, 18)
	f, err := os.Open("/dev/urandom")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	return fmt.Sprintf("%x", b), nil
}

// logTail is the end of the server's log, for error messages.
func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logFile())
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "postgres log (" + c.logFile() + "):\n" + string(b)
}

// DSN is the URL of database db as the superuser, over TCP on loopback,
// with the password read from the cluster's passfile.
func (c *Cluster) DSN(db string) string { return c.dsn(db, "") }

// SchemaDSN is the URL of schema (search_path) in the cluster's postgres
// database.
func (c *Cluster) SchemaDSN(schema string) string { return c.dsn("postgres", schema) }

func (c *Cluster) dsn(db, schema string) string {
	q := url.Values{"passfile": {c.passfile}, "sslmode": {"disable"}}
	if schema != "" {
		q.Set("search_path", schema) // pgx passes it on as a run-time parameter
	}
	u := url.URL{Scheme: "postgres", User: url.User(Superuser), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)), Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}

// Port is the server's loopback TCP port.
func (c *Cluster) Port() int { return c.port }

// Passfile is the pgpass file holding the superuser's password.
func (c *Cluster) Passfile() string { return c.passfile }

// Pid is the postmaster's process id; the backends are its children
// (certbench counts their CPU time).
func (c *Cluster) Pid() int { return c.cmd.Process.Pid }

// Version is the server's major version, "15".
func (c *Cluster) Version() string { return c.version }

func (c *Cluster) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, c.DSN(db))
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// DB gives t an empty place of its own, a fresh schema, and returns the
// DSN that makes it the search_path; the schema is dropped when t ends.
// Schemas rather than databases: CREATE DATABASE takes the better part
// of a second on a loaded machine (it writes the template through the WAL
// and syncs it), CREATE SCHEMA a few milliseconds. A test that needs a
// database of its own (ALTER DATABASE) uses CreateDB.
func (c *Cluster) DB(t testing.TB) string {
	t.Helper()
	name, err := c.CreateSchema(t.Name())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.DropSchema(name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c.SchemaDSN(name)
}

// freshName makes a new database or schema name from hint.
func (c *Cluster) freshName(hint string) string {
	base := unsafeName.ReplaceAllString(strings.ToLower(hint), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	return fmt.Sprintf("t%d_%s", c.seq.Add(1), base)
}

// admin runs sql on the postgres database as the superuser.
func (c *Cluster) admin(sql string, args ...any) error {
	select {
	case <-c.exited:
		return errors.New("the server is not running")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// CreateSchema creates a fresh schema in the postgres database whose
// name starts with hint (made safe) and returns its name.
func (c *Cluster) CreateSchema(hint string) (string, error) {
	name := c.freshName(hint)
	if err := c.admin("CREATE SCHEMA " + pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create schema %s: %w", name, err)
	}
	return name, nil
}

// DropSchema drops schema name and everything in it. Sessions still
// holding locks in it (a transaction a test left open) are ended first,
// or the drop would wait for them.
func (c *Cluster) DropSchema(name string) error {
	select {
	case <-c.exited:
		return nil // the server is gone (Down), and the schema's fate with it
	default:
	}
	err := c.admin(`SELECT pg_terminate_backend(l.pid) FROM pg_locks l
		JOIN pg_class r ON r.oid = l.relation JOIN pg_namespace n ON n.oid = r.relnamespace
		WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()`, name)
	if err == nil {
		err = c.admin("DROP SCHEMA IF EXISTS " + pgx.Identifier{name}.Sanitize() + " CASCADE")
	}
	if err != nil {
		return fmt.Errorf("drop schema %s: %w", name, err)
	}
	return nil
}

// CreateDB creates a fresh database whose name starts with hint (made
// safe) and returns its name.
func (c *Cluster) CreateDB(hint string) (string, error) {
	name := c.freshName(hint)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// DropDB drops database name, closing any connection still open to it.
func (c *Cluster) DropDB(name string) error {
	select {
	case <-c.exited:
		return nil // the server is gone, and the database with it
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (fast shutdown: open transactions are rolled
// back) and removes its directory. Stopping twice is harmless.
func (c *Cluster) Stop() error {
	var err error
	c.stopOnce.Do(func() {
		err = c.shutdown(syscall.SIGINT, 30*time.Second)
		if rmErr := c.removeDir(); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
	})
	return err
}

// shutdown signals the postmaster and waits for it, killing it after
// timeout.
func (c *Cluster) shutdown(sig syscall.Signal, timeout time.Duration) error {
	if c.cmd == nil {
		return nil
	}
	select {
	case <-c.exited:
		return nil
	default:
	}
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal postgres: %w", err)
	}
	select {
	case <-c.exited:
		return nil
	case <-time.After(timeout):
		c.kill()
		return fmt.Errorf("postgres did not stop within %v; killed\n%s", timeout, c.logTail())
	}
}

func (c *Cluster) kill() {
	c.cmd.Process.Kill()
	<-c.exited
}

// Shared is one cluster for a whole test binary, started by the first
// test that asks for a database; Main stops it. The zero value is ready.
type Shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Cluster returns the shared cluster, starting it on first use.
func (s *Shared) Cluster(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(func() { s.c, s.err = StartCluster() })
	if s.err != nil {
		t.Fatalf("pgtest: %v", s.err)
	}
	return s.c
}

// DB creates a fresh schema for t on the shared cluster and returns its
// DSN (see Cluster.DB); the schema is dropped when t ends.
func (s *Shared) DB(t testing.TB) string {
	t.Helper()
	return s.Cluster(t).DB(t)
}

// Main runs the tests and then stops the shared cluster, if one started;
// use it as os.Exit(pg.Main(m)) in TestMain.
func (s *Shared) Main(m *testing.M) int {
	code := m.Run()
	s.once.Do(func() {}) // no cluster starts after this
	if s.c != nil {
		if err := s.c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Down stops the server (fast shutdown: open transactions are rolled
// back) and keeps its data, for tests of what clients do while the
// database is down; Up starts it again.
func (c *Cluster) Down(t testing.TB) {
	t.Helper()
	if err := c.shutdown(syscall.SIGINT, 30*time.Second); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Up starts a server stopped by Down again, on the same port.
func (c *Cluster) Up(t testing.TB) {
	t.Helper()
	cred, _, err := runAs()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := c.startOn(cred, c.port); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

// Crash stops the server the way a lost machine does: an immediate
// shutdown (SIGQUIT), no checkpoint, open transactions cut off. Its data
// stays; Up starts it again (with crash recovery).
func (c *Cluster) Crash(t testing.TB) {
	t.Helper()
	if err := c.shutdown(syscall.SIGQUIT, 30*time.Second); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// StartStandby starts a streaming standby of c, a private cluster of its
// own on another loopback port, and makes it c's synchronous standby:
// from its return on, c's COMMIT returns only once the standby has the
// commit on its disk too (synchronous_commit on, synchronous_standby_names
// naming it). The standby is stopped and removed when t ends; Promote
// turns it into a primary.
//
// It is made as an operator makes one: pg_basebackup -R (which writes
// standby.signal and primary_conninfo) from the running primary, the
// replication connection naming itself by application_name.
func (c *Cluster) StartStandby(t testing.TB, name string) *Cluster {
	t.Helper()
	s, err := c.startStandby(name)
	if err != nil {
		t.Fatalf("pgtest: standby %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	if err := c.admin("ALTER SYSTEM SET synchronous_standby_names = " + quoteLiteral(name)); err != nil {
		t.Fatalf("pgtest: synchronous_standby_names: %v", err)
	}
	if err := c.admin("SELECT pg_reload_conf()"); err != nil {
		t.Fatalf("pgtest: reload: %v", err)
	}
	// The reload is asynchronous: wait until the primary counts the
	// standby as synchronous, or a commit made now might not wait for it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		state, err := c.queryString("SELECT coalesce(max(sync_state), '') FROM pg_stat_replication WHERE application_name = $1", name)
		if err == nil && state == "sync" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgtest: standby %s not synchronous within 60s (state %q, %v)\n%s", name, state, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) startStandby(name string) (*Cluster, error) {
	cred, owner, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Cluster{dir: dir, bin: c.bin, version: c.version, passfile: filepath.Join(dir, "pgpass"), lock: lock}
	// The standby's passfile is the primary's (the superuser's password
	// came along with the base backup), and it is the server's own user
	// that reads it: the walreceiver connects to the primary with it.
	pass, err := os.ReadFile(c.passfile)
	if err == nil {
		err = os.WriteFile(s.passfile, pass, 0o600)
	}
	if err == nil {
		err = os.Mkdir(s.sockDir(), 0o700)
	}
	if err == nil && owner[0] >= 0 {
		for _, p := range []string{s.dir, s.sockDir(), s.passfile} {
			if err = os.Chown(p, owner[0], owner[1]); err != nil {
				break
			}
		}
	}
	if err != nil {
		s.removeDir()
		return nil, fmt.Errorf("prepare %s: %w", dir, err)
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s passfile=%s application_name=%s", c.port, Superuser, s.passfile, name)
	cmd := exec.Command(filepath.Join(c.bin, "pg_basebackup"),
		"--pgdata="+s.dataDir(), "--dbname="+conninfo, "--write-recovery-conf",
		"--wal-method=stream", "--checkpoint=fast", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		s.removeDir()
		return nil, fmt.Errorf("pg_basebackup: %w\n%s", err, out)
	}
	if err := s.start(cred); err != nil {
		s.removeDir()
		return nil, err
	}
	return s, nil
}

// Promote ends recovery on a standby: it stops following its primary and
// takes writes (pg_promote, waiting for the promotion to finish).
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	ok, err := c.queryString("SELECT pg_promote(true, 60)::text")
	if err != nil || ok != "true" {
		t.Fatalf("pgtest: promote: %q %v\n%s", ok, err, c.logTail())
	}
}

// queryString runs sql on the postgres database as the superuser and
// returns the one value it selects.
func (c *Cluster) queryString(sql string, args ...any) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, sql, args...).Scan(&s)
	return s, err
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
