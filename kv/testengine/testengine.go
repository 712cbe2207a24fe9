// Package testengine chooses the kv engine the store-level test suites
// (mailbox, certified, receipts/evidence) run on, so that one suite
// proves both engines: Badger by default, PostgreSQL when the environment
// says CERTMAIL_TEST_ENGINE=postgres (`make test` runs those suites both
// ways). On PostgreSQL the test binary starts one private cluster
// (kv/pgkv/pgtest) and each engine gets a fresh schema (pgtest.Cluster.DB).
//
// A package using it declares
//
//	var engines testengine.Engines
//
//	func TestMain(m *testing.M) { os.Exit(engines.Main(m)) }
//
// and opens its stores with engines.Open(t), which returns nil on Badger:
// the caller then opens Badger its own way, as it always has.
package testengine

import (
	"context"
	"fmt"
	"os"
	"testing"

	"certmail/kv"
	"certmail/kv/pgkv"
	"certmail/kv/pgkv/pgtest"
)

// Env is the environment variable that names the engine.
const Env = "CERTMAIL_TEST_ENGINE"

// The engines Env may name; empty means Badger.
const (
	Badger   = "badger"
	Postgres = "postgres"
)

// Name is the engine the tests run on, or an error naming the bad value.
func Name() (string, error) {
	switch v := os.Getenv(Env); v {
	case "", Badger:
		return Badger, nil
	case Postgres:
		return Postgres, nil
	default:
		return "", fmt.Errorf("%s=%q: want %q or %q", Env, v, Badger, Postgres)
	}
}

// Engines opens the engines of one test binary. The zero value is ready.
type Engines struct {
	pg pgtest.Shared
}

// Main runs the tests and then stops the PostgreSQL cluster, if one
// started: os.Exit(engines.Main(m)).
func (s *Engines) Main(m *testing.M) int {
	if name, err := Name(); err != nil {
		fmt.Fprintln(os.Stderr, "testengine:", err)
		return 2
	} else if name != Badger {
		fmt.Fprintln(os.Stderr, "testengine: the tests run on", name)
	}
	return s.pg.Main(m)
}

// Postgres reports whether the tests run on PostgreSQL.
func (s *Engines) Postgres() bool {
	name, _ := Name()
	return name == Postgres
}

// Open returns a new, empty engine for t, which the caller closes (the
// mailbox store closes the engine it was given), or nil on Badger.
func (s *Engines) Open(t testing.TB) kv.Engine {
	t.Helper()
	if !s.Postgres() {
		return nil
	}
	return s.Reopen(t, s.DSN(t))
}

// DSN creates a fresh schema for t, dropped when t ends, and returns its
// DSN; Reopen opens engines on it, for tests that close a store and open
// it again. It fails t on Badger.
func (s *Engines) DSN(t testing.TB) string {
	t.Helper()
	if !s.Postgres() {
		t.Fatalf("testengine: DSN without %s=%s", Env, Postgres)
	}
	return s.pg.DB(t)
}

// PostgresDSN is DSN whatever the suite's engine: a fresh schema on the
// binary's PostgreSQL cluster (started if need be), for tests of what
// only a shared database does, such as several nodes writing one store.
func (s *Engines) PostgresDSN(t testing.TB) string {
	t.Helper()
	return s.pg.DB(t)
}

// Reopen opens an engine on the schema of dsn (from DSN).
func (s *Engines) Reopen(t testing.TB, dsn string) kv.Engine {
	t.Helper()
	e, err := pgkv.Open(context.Background(), dsn, pgkv.Options{})
	if err != nil {
		t.Fatalf("testengine: %v", err)
	}
	return e
}
