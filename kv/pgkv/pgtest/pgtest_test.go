package pgtest

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var pg Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

func query(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// The shared cluster runs with the durability an operator gets, as an
// unprivileged user, and gives each test a database of its own.
func TestSharedCluster(t *testing.T) {
	a, b := pg.DB(t), pg.DB(t)
	if a == b {
		t.Fatalf("two databases with one DSN %s", a)
	}
	for _, setting := range []string{"fsync", "synchronous_commit"} {
		if got := query(t, a, "SHOW "+setting); got != "on" {
			t.Errorf("%s = %s, want on", setting, got)
		}
	}
	if got := query(t, a, "SELECT current_setting('listen_addresses')"); got != "127.0.0.1" {
		t.Errorf("listen_addresses = %s", got)
	}
	execSQL(t, a, "CREATE TABLE only_in_a (k bytea PRIMARY KEY)")
	if got := query(t, b, "SELECT coalesce(to_regclass('only_in_a')::text, 'none')"); got != "none" {
		t.Errorf("a table of test a's schema is visible to test b: %s", got)
	}
	// The postmaster is not root (it would refuse), whoever runs the test.
	// A backend runs as the postmaster's user; it is read while its
	// connection is open (query's ends at once, and the backend with it:
	// its /proc entry was gone at times).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			if f[1] == "0" {
				t.Errorf("the server runs as root")
			}
			if os.Geteuid() != 0 && f[1] != strconv.Itoa(os.Geteuid()) {
				t.Errorf("the server runs as uid %s, not the test's %d", f[1], os.Geteuid())
			}
		}
	}
}

// The password is required and comes from the passfile in the DSN, not
// from the URL.
func TestPasswordFromPassfile(t *testing.T) {
	dsn := pg.DB(t)
	if strings.Contains(dsn, ":"+Superuser+"@") || strings.Count(dsn, "@") != 1 {
		t.Fatalf("DSN carries a password: %s", dsn)
	}
	noPass := strings.Replace(dsn, "passfile=", "passfile=%2Fnonexistent", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Setenv("PGPASSWORD", "")
	conn, err := pgx.Connect(ctx, noPass)
	if err == nil {
		conn.Close(ctx)
		t.Fatalf("connected without the password")
	}
	if !strings.Contains(err.Error(), "password") {
		t.Errorf("connecting without the password: %v, want an authentication failure", err)
	}
}

// A test's schema is dropped at the end of the test, even with a
// transaction left open in it.
func TestDBDroppedAtCleanup(t *testing.T) {
	var name string
	var conn *pgx.Conn
	t.Run("inner", func(t *testing.T) {
		dsn := pg.DB(t)
		name = query(t, dsn, "SELECT current_schema()")
		execSQL(t, dsn, "CREATE TABLE locked (k int)")
		var err error
		conn, err = pgx.Connect(context.Background(), dsn) // left open
		if err != nil {
			t.Fatal(err)
		}
		// A transaction holding a lock on a table of the schema.
		if _, err := conn.Exec(context.Background(), "BEGIN; SELECT * FROM locked"); err != nil {
			t.Fatal(err)
		}
	})
	defer conn.Close(context.Background())
	c := pg.Cluster(t)
	if got := query(t, c.DSN("postgres"), "SELECT count(*)::text FROM pg_namespace WHERE nspname = '"+name+"'"); got != "0" || !strings.HasPrefix(name, "t") {
		t.Errorf("schema %q is still there after its test", name)
	}
}

// A private cluster keeps its data across a restart and is gone, process
// and directory, after Stop.
func TestRestartAndStop(t *testing.T) {
	c, err := StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	dsn := c.DB(t)
	execSQL(t, dsn, "CREATE TABLE kept (k text PRIMARY KEY); INSERT INTO kept VALUES ('x')")
	c.Down(t)
	c.Up(t)
	if got := query(t, dsn, "SELECT k FROM kept"); got != "x" {
		t.Errorf("after restart: %q", got)
	}
	pid := c.cmd.Process.Pid
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s left behind: %v", c.dir, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
		t.Errorf("postmaster %d still running", pid)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// Without the binaries the error names the Debian package to install.
func TestMissingBinariesNamePackage(t *testing.T) {
	_, _, err := findBinIn(t.TempDir() + "/*/bin")
	if err == nil || !strings.Contains(err.Error(), "`postgresql`") {
		t.Fatalf("error %v does not name the package", err)
	}
	dir, v, err := findBin()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dir, "/"+v+"/") {
		t.Errorf("binaries %s for version %s", dir, v)
	}
}

// A test binary killed with -9 leaves no server running, and the next
// cluster's start removes its directory.
func TestKilledBinaryCleanedUp(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") != "" {
		c, err := StartCluster()
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(c.dir, c.cmd.Process.Pid)
		time.Sleep(time.Minute) // killed before
		os.Exit(1)
	}
	cmd := osexec.Command(os.Args[0], "-test.run=^TestKilledBinaryCleanedUp$")
	cmd.Env = append(os.Environ(), "PGTEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var dir string
	var pid int
	if _, err := fmt.Fscan(out, &dir, &pid); err != nil {
		cmd.Process.Kill()
		t.Fatalf("child: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("postmaster %d outlived its test binary by 10s", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// (Another test binary starting a cluster meanwhile may have swept
	// it already.)
	sweep(filepath.Dir(dir))
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		os.RemoveAll(dir)
		t.Fatalf("sweep left %s: %v", dir, err)
	}
	// A live cluster's directory stays.
	c := pg.Cluster(t)
	sweep(filepath.Dir(c.dir))
	if _, err := os.Stat(c.dir); err != nil {
		t.Fatalf("sweep removed a live cluster: %v", err)
	}
}

// A synchronous standby has every commit the primary acknowledged, and
// once the primary is lost (immediate shutdown) and the standby promoted,
// it takes writes.
func TestStandbyPromote(t *testing.T) {
	primary := Start(t)
	schema, err := primary.CreateSchema("standby")
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, primary.SchemaDSN(schema), "CREATE TABLE t (n int)")
	execSQL(t, primary.SchemaDSN(schema), "INSERT INTO t VALUES (1)")
	standby := primary.StartStandby(t, "standby1")
	if got := query(t, standby.SchemaDSN(schema), "SELECT pg_is_in_recovery()::text"); got != "true" {
		t.Fatalf("standby in recovery: %s", got)
	}
	execSQL(t, primary.SchemaDSN(schema), "INSERT INTO t VALUES (2)")
	primary.Crash(t)
	standby.Promote(t)
	execSQL(t, standby.SchemaDSN(schema), "INSERT INTO t VALUES (3)")
	if got := query(t, standby.SchemaDSN(schema), "SELECT string_agg(n::text, ',' ORDER BY n) FROM t"); got != "1,2,3" {
		t.Fatalf("rows on the promoted standby: %s, want 1,2,3", got)
	}
}
