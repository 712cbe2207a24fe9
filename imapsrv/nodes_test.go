package imapsrv_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"certmail/kv/pgkv/pgtest"
	"certmail/mailbox"
)

// pg is the PostgreSQL cluster of the tests that run several servers on
// one database, started by the first that asks.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// TestSearchTextRoundTrips: SEARCH TEXT on a store on PostgreSQL reads
// the bodies in batches (mailbox.Store.ReadRaws), not one round trip per
// message: 1,000 messages, three of them matching, in a handful of round
// trips (it took 1,000).
func TestSearchTextRoundTrips(t *testing.T) {
	ts := startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, dsn: pg.DB(t), noFollow: true})
	ts.addUser("alice")
	const n = 1000
	for i := 0; i < n; i += 100 {
		err := ts.store.Update(func(tx *mailbox.Tx) error {
			for j := i; j < i+100; j++ {
				body := "nothing to see here\r\n"
				if j == 0 || j == 500 || j == n-1 {
					body = "a quokka smiles\r\n"
				}
				if _, err := tx.Append("alice", "INBOX", []byte(simpleMessage(fmt.Sprintf("message %d", j), body)), mailbox.AppendOptions{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	before := ts.pg.Stats()
	untagged := rc.ok(`UID SEARCH TEXT "quokka"`)
	trips := ts.pg.Stats().RoundTrips - before.RoundTrips
	if len(untagged) != 1 || untagged[0] != fmt.Sprintf("* SEARCH 1 501 %d", n) {
		t.Fatalf("UID SEARCH TEXT: %q", untagged)
	}
	t.Logf("UID SEARCH TEXT over %d messages: %d round trips", n, trips)
	if trips > 10 {
		t.Errorf("UID SEARCH TEXT over %d messages took %d round trips", n, trips)
	}
}

// TestFetchBatchedSameAsBadger: on PostgreSQL, FETCH reads what a run of
// messages needs in batches (readFetchBatch) rather than a message at a
// time as on Badger; the answers are the same, byte for byte, over more
// messages than a batch holds, and a FETCH of 50 messages' header fields
// is one round trip (it was 50).
func TestFetchBatchedSameAsBadger(t *testing.T) {
	pgs := startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, dsn: pg.DB(t), noFollow: true})
	bs := newTestServer(t)
	const n = 300
	var clients []*rawClient
	for _, ts := range []*testServer{pgs, bs} {
		ts.addUser("alice")
		for i := 0; i < n; i += 100 {
			err := ts.store.Update(func(tx *mailbox.Tx) error {
				for j := i; j < i+100; j++ {
					raw := simpleMessage(fmt.Sprintf("message %d", j), strings.Repeat("body text\r\n", j%7+1))
					if j%3 == 0 {
						raw = "From: a@example.org\r\nSubject: mixed " + fmt.Sprint(j) + "\r\nMIME-Version: 1.0\r\n" +
							"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n" +
							"--b\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--b--\r\n"
					}
					if _, err := tx.Append("alice", "INBOX", []byte(raw), mailbox.AppendOptions{}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		rc := ts.rawLogin("alice")
		rc.ok(`SELECT INBOX`)
		clients = append(clients, rc)
	}
	for _, cmd := range []string{
		`FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (Subject From)])`,
		`FETCH 1:* (ENVELOPE BODYSTRUCTURE)`,
		`FETCH 1:* (BODY.PEEK[])`,
		`UID FETCH 20:290 (BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[HEADER])`,
	} {
		got, want := clients[0].ok(cmd), clients[1].ok(cmd)
		if len(got) != len(want) {
			t.Fatalf("%s: %d responses on PostgreSQL, %d on Badger", cmd, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: response %d on PostgreSQL:\n%q\non Badger:\n%q", cmd, i, got[i], want[i])
			}
		}
	}
	// The engine's counter is the whole store's: upkeep that happens to
	// run in the window (timers, the outbox, the login guard's sweep)
	// counts too, so the fewest of a few tries counts.
	var trips uint64
	for try := range 3 {
		before := pgs.pg.Stats()
		if got := clients[0].ok(`UID FETCH 251:300 (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To Subject Date)])`); len(got) != 50 {
			t.Fatalf("FETCH of 50: %d responses", len(got))
		}
		if n := pgs.pg.Stats().RoundTrips - before.RoundTrips; try == 0 || n < trips {
			trips = n
		}
	}
	if trips > 1 {
		t.Errorf("FETCH of 50 messages' header fields: %d round trips, want 1", trips)
	}
}

// TestCommandRoundTrips: what the session mix's commands cost on
// PostgreSQL, in round trips (the engine's exact counter), logged, and
// bounded where reads were merged: a STORE reads its messages and the
// MODSEQ state together (it took a round trip each: 3 for one message,
// 302 for 300), EXPUNGE its messages, then their blobs, usage and MODSEQ
// state together (6), a FETCH of 50 headers one batch (50), SELECT the
// mailbox's record and MODSEQ state together (7 round trips).
func TestCommandRoundTrips(t *testing.T) {
	ts := startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, dsn: pg.DB(t), noFollow: true})
	ts.addUser("alice")
	for i := 0; i < 300; i += 100 {
		err := ts.store.Update(func(tx *mailbox.Tx) error {
			for j := i; j < i+100; j++ {
				if _, err := tx.Append("alice", "INBOX", []byte(simpleMessage(fmt.Sprintf("message %d", j), "body\r\n")), mailbox.AppendOptions{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rc := ts.rawLogin("alice")
	for _, c := range []struct {
		cmd  string
		most uint64 // 0: only logged
	}{
		{`LIST "" "*"`, 0},
		{`STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)`, 0},
		{`SELECT INBOX`, 6}, // 7 when the MODSEQ state was read after the mailbox's
		{`UID FETCH 1:* (FLAGS)`, 0},
		{`UID FETCH 251:300 (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (From To Cc Subject Date Message-ID Content-Type)])`, 1},
		{`FETCH 7 (UID BODY.PEEK[])`, 1},
		{`UID STORE 5 +FLAGS (\Flagged)`, 2},
		{`UID STORE 1:300 +FLAGS.SILENT (\Seen)`, 2},
		{`UID STORE 299:300 +FLAGS.SILENT (\Deleted)`, 2},
		{`EXPUNGE`, 4},
	} {
		// The engine's counter is the whole store's: upkeep that happens
		// to run in the window (timers, the outbox, the login guard's
		// sweep) counts too, so a read over its bound is measured again
		// and the fewest counts. A write is measured once: done again it
		// would change nothing and cost less.
		readOnly := strings.HasPrefix(c.cmd, "SELECT") || strings.HasPrefix(c.cmd, "UID FETCH") || strings.HasPrefix(c.cmd, "FETCH")
		var trips, txs uint64
		for try := 0; try < 5; try++ {
			before := ts.pg.Stats()
			rc.ok(c.cmd)
			after := ts.pg.Stats()
			n := after.RoundTrips - before.RoundTrips
			if try == 0 || n < trips {
				trips, txs = n, after.Transactions-before.Transactions
			}
			if !readOnly || c.most == 0 || trips <= c.most {
				break
			}
		}
		t.Logf("%-50.50s %3d round trips, %d transactions", c.cmd, trips, txs)
		if c.most > 0 && trips > c.most {
			t.Errorf("%s: %d round trips, want at most %d", c.cmd, trips, c.most)
		}
	}
}

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

// twoNodes starts two servers on one PostgreSQL database (two certmail
// nodes) with the account alice.
func twoNodes(t *testing.T) (a, b *testServer) {
	dsn := pg.DB(t)
	a = startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, dsn: dsn})
	b = startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, dsn: dsn})
	a.addUser("alice")
	return a, b
}

// TestPollsSeeOtherNodesCommits: a NOOP, CHECK or STATUS on node B
// issued after a command on node A returned reports what that command
// did, every time (imaptest's two-connection scripts with one
// connection on each of two nodes: a NOOP on B right after an APPEND,
// STORE or EXPUNGE on A reported nothing in 11 of their commands, when
// B had not yet heard of A's commit).
func TestPollsSeeOtherNodesCommits(t *testing.T) {
	a, b := twoNodes(t)
	ra, rb, rs := a.rawLogin("alice"), b.rawLogin("alice"), b.rawLogin("alice")
	ra.ok("SELECT INBOX")
	rb.ok("SELECT INBOX")
	for i := 1; i <= 20; i++ {
		msg := simpleMessage(fmt.Sprintf("round %d", i), "hello")
		ra.ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
		mustContain(t, rb.ok("NOOP"), "* 1 EXISTS")
		mustContain(t, rs.ok("STATUS INBOX (MESSAGES)"), "MESSAGES 1")
		ra.ok("NOOP")
		ra.ok(`STORE 1 +FLAGS.SILENT (\Seen)`)
		mustContain(t, rb.ok("CHECK"), "* 1 FETCH (", `\Seen`)
		ra.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
		ra.ok("EXPUNGE")
		mustContain(t, rb.ok("NOOP"), "* 1 EXPUNGE")
		mustContain(t, rs.ok("STATUS INBOX (MESSAGES)"), "MESSAGES 0")
	}
	// Both sessions mark a message deleted, A expunges it, then B's
	// EXPUNGE reports it gone (imaptest's expunge script, "expunging
	// while message is already expunged").
	for i := 1; i <= 10; i++ {
		msg := simpleMessage(fmt.Sprintf("expunged twice %d", i), "hello")
		ra.ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
		ra.ok("NOOP")
		mustContain(t, rb.ok("NOOP"), "* 1 EXISTS")
		ra.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
		rb.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
		ra.ok("EXPUNGE")
		mustContain(t, rb.ok("EXPUNGE"), "* 1 EXPUNGE")
	}
}

// TestRecentOnceAcrossNodes: a new message is \Recent in one session
// whichever nodes the sessions are on (RFC 3501 2.3.2). Each node handed
// a new message to its own session that had the mailbox selected, and a
// claim made so was stored only when that session let the mailbox go,
// so a SELECT on the other node claimed it again (imaptest on two nodes:
// "Message UID=n has \Recent flag in multiple sessions").
func TestRecentOnceAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	login := func(ts *testServer) *rawClient {
		rc := ts.rawLogin("alice")
		rc.ShowRecent = true
		return rc
	}
	ra, rb := login(a), login(b)
	ra.ok("SELECT INBOX")
	rb.ok("SELECT INBOX")
	// recentIn reports whether message 1..n are \Recent in rc's session.
	recentIn := func(rc *rawClient, n int) []bool {
		t.Helper()
		lines := rc.ok(fmt.Sprintf("FETCH 1:%d (FLAGS)", n))
		out := make([]bool, n)
		for i := range n {
			out[i] = strings.Contains(mustContain(t, lines, fmt.Sprintf("* %d FETCH (", i+1)), `\Recent`)
		}
		return out
	}
	// One message appended through A, one through B, each by a session
	// that does not have the INBOX selected.
	for i, node := range []*testServer{a, b} {
		msg := simpleMessage(fmt.Sprintf("through %d", i), "hello")
		node.rawLogin("alice").ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
		mustContain(t, ra.ok("NOOP"), fmt.Sprintf("* %d EXISTS", i+1))
		mustContain(t, rb.ok("NOOP"), fmt.Sprintf("* %d EXISTS", i+1))
	}
	onA, onB := recentIn(ra, 2), recentIn(rb, 2)
	// And a session that selects the INBOX later, on either node, claims
	// neither.
	late := map[string][]bool{}
	for name, node := range map[string]*testServer{"A": a, "B": b} {
		rc := login(node)
		mustContain(t, rc.ok("SELECT INBOX"), "* 0 RECENT")
		late[name] = recentIn(rc, 2)
	}
	for i := range 2 {
		n := 0
		for _, in := range []bool{onA[i], onB[i], late["A"][i], late["B"][i]} {
			if in {
				n++
			}
		}
		if n > 1 {
			t.Errorf("message %d is \\Recent in %d sessions (A %v, B %v, a later SELECT on A %v, on B %v)",
				i+1, n, onA[i], onB[i], late["A"][i], late["B"][i])
		}
	}
	// Each went to the session on the node it came through.
	if !onA[0] || !onB[1] {
		t.Errorf("message 1 (through A) \\Recent on A: %v; message 2 (through B) on B: %v; want both", onA[0], onB[1])
	}

	// A mailbox selected on A only: what A hands to its session is
	// claimed in the store at once, not when the session lets the
	// mailbox go, so a SELECT on B does not take it too.
	ra.ok("CREATE Work")
	ra.ok("SELECT Work")
	msg := simpleMessage("work", "hello")
	a.rawLogin("alice").ok(fmt.Sprintf("APPEND Work {%d+}\r\n%s", len(msg), msg))
	mustContain(t, ra.ok("NOOP"), "* 1 EXISTS")
	if !recentIn(ra, 1)[0] {
		t.Errorf("the message appended to Work through A is not \\Recent in A's session that has Work selected")
	}
	rl := login(b)
	mustContain(t, rl.ok("SELECT Work"), "* 0 RECENT")
	if recentIn(rl, 1)[0] {
		t.Errorf("the message appended to Work through A is \\Recent in A's session and in a later SELECT on B")
	}

	// A mailbox selected on B only, a message copied into it through A
	// (imaptest's copy script): \Recent in B's session, the only one
	// that has it selected, and announced with its RECENT count.
	rb.ok("CREATE Copies")
	rb.ok("SELECT Copies")
	ra.ok("SELECT INBOX")
	ra.ok("COPY 1 Copies")
	mustContain(t, rb.ok("NOOP"), "* 1 RECENT")
	if !recentIn(rb, 1)[0] {
		t.Errorf("the message copied into Copies through A is not \\Recent in B's session that has Copies selected")
	}
	mustContain(t, login(a).ok("SELECT Copies"), "* 0 RECENT")
}

// TestReadsSeeOtherNodesFlags: a FETCH FLAGS, SEARCH or STORE on node
// B sent right after a STORE on node A was answered OK shows A's flags,
// every time (Thunderbird's several connections land on different nodes
// behind one address). A FETCH or SEARCH answered from before A's change
// in 125 of 200 tries here (python imaplib: 144 of 200) when only NOOP,
// CHECK, IDLE, SELECT, STATUS, LIST and EXPUNGE caught up first; waiting
// only for a change notice B had received (none had, mostly) left 86 to
// 100. A STORE on B is a write, which catches up its mailbox in its
// transaction (mailbox's tx.catchUp). Logs what a command on B costs,
// then what it costs when A changed nothing.
func TestReadsSeeOtherNodesFlags(t *testing.T) {
	a, b := twoNodes(t)
	ra, rb := a.rawLogin("alice"), b.rawLogin("alice")
	msg := simpleMessage("flags across nodes", "hello")
	ra.ok(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	ra.ok("SELECT INBOX")
	mustContain(t, rb.ok("SELECT INBOX"), "* 1 EXISTS")
	// last returns the last response of rc's command that starts so.
	last := func(rc *rawClient, cmd, prefix string) string {
		var got string
		for _, l := range rc.ok(cmd) {
			if strings.HasPrefix(l, prefix) {
				got = l // one before it is a change reported on its own (RFC 3501 7.4.2)
			}
		}
		return got
	}
	const rounds = 200
	var stale []string
	var inB time.Duration
	before := b.pg.Stats()
	for i := range rounds {
		set, other := `\Flagged`, `\Answered`
		if i%2 == 1 {
			set, other = other, set
		}
		ra.ok(`STORE 1 FLAGS.SILENT (` + set + `)`)
		start := time.Now()
		switch i % 7 {
		case 0, 1, 2, 3, 4:
			if got := last(rb, `FETCH 1 (FLAGS)`, "* 1 FETCH ("); !strings.Contains(got, set) || strings.Contains(got, other) {
				stale = append(stale, fmt.Sprintf("round %d: FETCH %q, want %s", i, got, set))
			}
		case 5:
			want := "* SEARCH 1"
			if set != `\Flagged` {
				want = "* SEARCH"
			}
			if got := last(rb, `SEARCH FLAGGED`, "* SEARCH"); got != want {
				stale = append(stale, fmt.Sprintf("round %d: SEARCH FLAGGED %q, want %q", i, got, want))
			}
		case 6:
			if got := last(rb, `STORE 1 +FLAGS (\Seen)`, "* 1 FETCH ("); !strings.Contains(got, set) || strings.Contains(got, other) {
				stale = append(stale, fmt.Sprintf("round %d: STORE %q, want %s", i, got, set))
			}
		}
		inB += time.Since(start)
	}
	after := b.pg.Stats()
	t.Logf("B after a STORE on A: %v a command, %.2f transactions, %.2f round trips (its polls included); %d of %d stale",
		inB/rounds, float64(after.Transactions-before.Transactions)/rounds,
		float64(after.RoundTrips-before.RoundTrips)/rounds, len(stale), rounds)
	if len(stale) > 0 {
		t.Errorf("%d of %d commands on B right after a STORE on A answered from before it; first: %s", len(stale), rounds, stale[0])
	}
	start, before := time.Now(), b.pg.Stats()
	for range rounds {
		rb.ok(`FETCH 1 (FLAGS)`)
	}
	after = b.pg.Stats()
	t.Logf("B, nothing changed: FETCH FLAGS %v, %.2f transactions, %.2f round trips (polls included)",
		time.Since(start)/rounds, float64(after.Transactions-before.Transactions)/rounds,
		float64(after.RoundTrips-before.RoundTrips)/rounds)
}
