package imapsrv_test

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"certmail/imapsrv"
)

// searchCost is what the last SEARCH cost, from the server's test hook.
type searchCost struct {
	messages, folds int
	err             error
}

func watchSearches(ts *testServer) chan searchCost {
	done := make(chan searchCost, 16)
	imapsrv.OnSearchDone(ts.srv, func(messages, folds int, err error) {
		done <- searchCost{messages, folds, err}
	})
	return done
}

// Issue 11 item 7: each key that is not ASCII case-folded the whole
// message again, so 2,000 of them over a 5 MB message cost 32 s. Now a
// message is folded once per SEARCH (header, body, each header field
// asked for), however many keys: the folds do not grow with the keys, and
// neither do the bytes allocated (before, 50 keys allocated 50 times what
// one did).
func TestSearchFoldsOncePerMessage(t *testing.T) {
	ts := newTestServer(t)
	costs := watchSearches(ts)
	ts.addUser("alice")
	body := strings.Repeat("Ünïcödé text of the body, naïve and long enough\r\n", 10000) + "un CAFÉ\r\n" // ~500 KB
	ts.deliver("alice", "INBOX", "From: Zoë <zoe@example.org>\r\nSubject: Résumé\r\n\r\n"+body)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")

	cost := func(keys string, n int) (folds int, alloc uint64) {
		t.Helper()
		cmd := "SEARCH" + strings.Repeat(" "+keys, n)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		untagged := rc.ok(cmd)
		runtime.ReadMemStats(&after)
		if len(untagged) != 1 || untagged[0] != "* SEARCH 1" {
			t.Fatalf("%.60s…: %q, want the message", cmd, untagged)
		}
		c := <-costs
		return c.folds, after.TotalAlloc - before.TotalAlloc
	}
	// TEXT folds the header and the body, BODY the body, FROM and
	// SUBJECT their fields.
	for _, keys := range []string{`TEXT "café"`, `BODY "café"`, `FROM "zoë" SUBJECT "RÉSUMÉ"`} {
		folds1, alloc1 := cost(keys, 1)
		folds50, alloc50 := cost(keys, 50)
		t.Logf("%s: 1×: %d folds, %d bytes allocated; 50×: %d folds, %d bytes", keys, folds1, alloc1, folds50, alloc50)
		if folds50 != folds1 || folds1 > 2 {
			t.Errorf("%s: %d folds for one key, %d for 50: want the same, at most 2", keys, folds1, folds50)
		}
		// Generous: the bytes allocated by 50 keys must not be near 50
		// times one key's (what folding per key costs).
		if alloc50 > 5*alloc1+(1<<20) {
			t.Errorf("%s: 50 keys allocated %d bytes, one key %d: the cost grows with the keys", keys, alloc50, alloc1)
		}
	}
	// ASCII keys fold nothing.
	if folds, _ := cost(`TEXT "text" OR TEXT "naive" FROM "ZOE"`, 20); folds != 0 {
		t.Errorf("ASCII keys folded %d texts", folds)
	}
}

// limits.max_search_keys: a SEARCH with more keys (nested ones counted)
// gets NO [LIMIT] before any message is read; the session goes on.
func TestSearchKeyLimit(t *testing.T) {
	ts := newTestServer(t, func(o *imapsrv.Options) { o.Limits.MaxSearchKeys = 10 })
	costs := watchSearches(ts)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 3)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	rc.ok("SEARCH" + strings.Repeat(` TEXT "message"`, 10))
	<-costs
	for _, cmd := range []string{
		"SEARCH" + strings.Repeat(` TEXT "café"`, 11),
		"UID SEARCH" + strings.Repeat(` TEXT "café"`, 2000),
		`SEARCH OR (SEEN FLAGGED UNSEEN) NOT (TEXT "a" TEXT "b" TEXT "c" OR BODY "x" FROM "y")`, // 11 keys
	} {
		status := rc.fail("NO [LIMIT]", cmd)
		if !strings.Contains(status, "too many search keys") || !strings.Contains(status, "(limit 10)") {
			t.Errorf("%.40s…: %q", cmd, status)
		}
	}
	select {
	case c := <-costs:
		if c.messages != 0 {
			t.Errorf("a refused SEARCH looked at %d messages", c.messages)
		}
	default:
	}
	rc.alive()
}

// A client that hangs up during a SEARCH stops it: the server does not
// go on matching for nobody. Text keys look at the clock at each message,
// cheap keys every 64 messages: both stop.
func TestSearchStopsWhenClientHangsUp(t *testing.T) {
	for _, keys := range []string{`TEXT "quokka"`, `UNSEEN`} {
		t.Run(keys, func(t *testing.T) { searchHangUp(t, keys) })
	}
}

func searchHangUp(t *testing.T, keys string) {
	ts := newTestServer(t)
	costs := watchSearches(ts)
	ts.addUser("alice")
	const n = 300
	ts.deliverN("alice", "INBOX", n)
	// 10 ms a message: the whole SEARCH would take 3 s, without the CPU.
	started := make(chan struct{})
	var seen atomic.Int32
	imapsrv.OnSearchMessage(ts.srv, func() {
		if seen.Add(1) == 1 {
			close(started)
		}
		time.Sleep(10 * time.Millisecond)
	})
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	// One more command after SEARCH, as a pipelining client sends: the
	// server still sees the hang-up.
	rc.write("a1 SEARCH " + keys + "\r\na2 NOOP\r\n")
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the SEARCH did not start")
	}
	rc.conn.Close()
	hungUp := time.Now()
	select {
	case c := <-costs:
		t.Logf("stopped after %d of %d messages, %v after the hang-up: %v", c.messages, n, time.Since(hungUp).Round(time.Millisecond), c.err)
		if c.err == nil || c.messages >= n/2 {
			t.Errorf("SEARCH went on after the client hung up: %d of %d messages, error %v", c.messages, n, c.err)
		}
	case <-time.After(2 * time.Second): // the full search takes 3 s
		t.Fatal("SEARCH still running 2s after the client hung up")
	}
}

// limits.search_timeout: a SEARCH running longer is answered NO [LIMIT],
// and the session goes on.
func TestSearchTimeout(t *testing.T) {
	ts := newTestServer(t, func(o *imapsrv.Options) { o.Limits.SearchTimeout = 100 * time.Millisecond })
	costs := watchSearches(ts)
	ts.addUser("alice")
	const n = 200
	ts.deliverN("alice", "INBOX", n)
	imapsrv.OnSearchMessage(ts.srv, func() { time.Sleep(5 * time.Millisecond) }) // 1 s in all
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	start := time.Now()
	status := rc.fail("NO [LIMIT]", `SEARCH TEXT "quokka"`)
	if !strings.Contains(status, "SEARCH stopped after 100ms") {
		t.Errorf("status %q", status)
	}
	if c := <-costs; c.messages >= n {
		t.Errorf("looked at all %d messages in %v", c.messages, time.Since(start))
	}
	imapsrv.OnSearchMessage(ts.srv, nil)
	rc.alive()
}
