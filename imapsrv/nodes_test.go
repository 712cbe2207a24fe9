package imapsrv_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"certmail/kv/pgkv/pgtest"
)

// pg is the PostgreSQL cluster of the tests that run several servers on
// one database, started by the first that asks.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// TestIdleAcrossNodes: three servers, each on a store of its own on one
// PostgreSQL database (three certmail nodes behind one address). A message
// appended through A reaches IDLE sessions on B and C within a second as
// `* 1 EXISTS`; flags stored through B reach the IDLE session on C as a
// FETCH; an expunge through A reaches C as an EXPUNGE.
func TestIdleAcrossNodes(t *testing.T) {
	dsn := pg.DB(t)
	var nodes []*testServer
	for range 3 {
		nodes = append(nodes, startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, dsn: dsn}))
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.addUser("alice")

	idle := func(ts *testServer) *rawClient {
		rc := ts.rawLogin("alice")
		rc.ok(`SELECT INBOX`)
		rc.write("i1 IDLE\r\n")
		if l := rc.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q", l)
		}
		return rc
	}
	expect := func(rc *rawClient, node, want string, start time.Time) {
		t.Helper()
		l := rc.readLine()
		if !strings.HasPrefix(l, want) {
			t.Fatalf("IDLE on %s: %q, want %q", node, l, want)
		}
		d := time.Since(start)
		t.Logf("%s: %q after %v", node, l, d)
		if d > time.Second {
			t.Errorf("%s heard %q after %v, more than a second", node, l, d)
		}
	}
	onB, onC := idle(b), idle(c)

	msg := simpleMessage("across nodes", "hello")
	ra := a.rawLogin("alice")
	start := time.Now()
	ra.ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	expect(onB, "B", "* 1 EXISTS", start)
	expect(onC, "C", "* 1 EXISTS", start)

	// B leaves IDLE and flags the message; C hears it.
	onB.write("DONE\r\n")
	if _, st := onB.readUntilTagged("i1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("IDLE on B: %q", st)
	}
	start = time.Now()
	onB.ok(`STORE 1 +FLAGS.SILENT (\Flagged)`)
	expect(onC, "C", `* 1 FETCH (UID 1 FLAGS (\Flagged))`, start)

	// A expunges it; C hears the flag, then the expunge.
	ra.ok(`SELECT INBOX`)
	start = time.Now()
	ra.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	expect(onC, "C", `* 1 FETCH (UID 1 FLAGS (`, start)
	start = time.Now()
	ra.ok(`EXPUNGE`)
	expect(onC, "C", "* 1 EXPUNGE", start)
	onC.write("DONE\r\n")
	if _, st := onC.readUntilTagged("i1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("IDLE on C: %q", st)
	}
	mustContain(t, onC.ok(`STATUS INBOX (MESSAGES)`), "MESSAGES 0")
}
