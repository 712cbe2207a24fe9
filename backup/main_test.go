package backup

import (
	"os"
	"testing"

	"certmail/kv/pgkv/pgtest"
)

// pg is the private PostgreSQL cluster of this test binary (started by
// the first test that asks): migrate is tested against the real thing.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
