package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"certmail/kv/pgkv/pgtest"
)

// TestDatabaseRestartUnderLoad (issue 13): three nodes on one private
// cluster, 150 LMTP deliveries spread round robin over them, three at a
// time. A third of the way through PostgreSQL is stopped (fast shutdown)
// for about two seconds while the deliveries go on, then started again.
// While it is down every LMTP answer is a temporary failure (4xx: never a
// 250, never a 5xx, which would bounce the message) and an IMAP LOGIN or
// SELECT gets NO (the connection is not dropped). A delivery that fails
// is tried again, as an MTA does (bounded). At the end every delivery has
// been acknowledged, each is in the mailbox once through every node, and
// every node took mail after the restart by itself (none restarted).
//
// A delivery cut off by the stop while its COMMIT was on the wire may
// have been stored although it was answered 4xx; its retry then stores it
// a second time (at least once, never lost: scale-out.md, "When the
// primary fails"). Only such a delivery may be there twice.
func TestDatabaseRestartUnderLoad(t *testing.T) {
	const total, workers, maxTries = 150, 3, 200
	c := pgtest.Start(t) // a cluster of its own: this test stops it
	dsn := c.DB(t)
	first := t.TempDir()
	certmail(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--store", dsn, "--data", first).must(t, 0)
	key, err := os.ReadFile(filepath.Join(first, "gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*server
	for i := range 3 {
		dir := first
		if i > 0 {
			dir = t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "gateway.key"), key, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, startNode(t, dsn, dir, i))
	}
	// A session on each node logged in and selected before the stop.
	var before []*imapRaw
	for _, n := range nodes {
		s := dialIMAPRaw(t, n.imap)
		if st := s.cmd("LOGIN alice alice-pw"); !strings.HasPrefix(st, "OK") {
			t.Fatalf("LOGIN before the stop: %s", st)
		}
		if st := s.cmd("SELECT INBOX"); !strings.HasPrefix(st, "OK") {
			t.Fatalf("SELECT before the stop: %s", st)
		}
		before = append(before, s)
	}

	type attempt struct {
		node       int
		start, end time.Time
		code       int   // the first reply that was not the one wanted; 250 for an acknowledgement
		err        error // the connection failed (no reply)
	}
	var (
		mu        sync.Mutex
		next      int
		attempts  = map[int][]attempt{}
		acked     = map[int]bool{}
		stopNow   = make(chan struct{})
		stopOnce  sync.Once
		downAt    time.Time // Down has returned: nothing can commit from here on
		upAt      time.Time // Up is called
		wg        sync.WaitGroup
		deadline  = time.Now().Add(3 * time.Minute)
		downAfter = total / 3
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				if i == downAfter {
					stopOnce.Do(func() { close(stopNow) })
				}
				mu.Unlock()
				if i >= total {
					return
				}
				msg := fmt.Sprintf("Subject: m%03d\r\nMessage-ID: <m%03d@test>\r\n\r\nmessage %03d\r\n", i, i, i)
				for try := 0; try < maxTries && time.Now().Before(deadline); try++ {
					n := (i + try) % len(nodes)
					a := attempt{node: n, start: time.Now()}
					a.code, a.err = lmtpAttempt(nodes[n].lmtp, "alice@example.org", msg)
					a.end = time.Now()
					mu.Lock()
					attempts[i] = append(attempts[i], a)
					if a.err == nil && a.code == 250 {
						acked[i] = true
					}
					mu.Unlock()
					if a.err == nil && (a.code == 250 || a.code >= 500) {
						break // acknowledged, or refused for good (a failure below)
					}
					time.Sleep(100 * time.Millisecond) // the MTA's queue retry, shortened
				}
			}
		}()
	}

	select {
	case <-stopNow:
	case <-time.After(time.Until(deadline)):
		t.Fatal("the deliveries never reached the stop")
	}
	c.Down(t)
	mu.Lock()
	downAt = time.Now()
	mu.Unlock()
	// While it is down: an IMAP command that needs the store gets NO on
	// every node, over the sessions opened before and over new ones.
	for n, node := range nodes {
		if st := before[n].cmd("SELECT INBOX"); !strings.HasPrefix(st, "NO") {
			t.Errorf("node %c: SELECT while the database is down: %q, want NO", 'a'+n, st)
		}
		s := dialIMAPRaw(t, node.imap)
		st := s.cmd("LOGIN alice alice-pw")
		if strings.HasPrefix(st, "OK") { // a login may be answered from a cache: the mailbox then is not
			st = s.cmd("SELECT INBOX")
		}
		if !strings.HasPrefix(st, "NO") {
			t.Errorf("node %c: a new session's LOGIN/SELECT while the database is down: %q, want NO", 'a'+n, st)
		}
	}
	time.Sleep(time.Until(downAt.Add(2 * time.Second)))
	mu.Lock()
	upAt = time.Now()
	mu.Unlock()
	c.Up(t)
	wg.Wait()

	// Every answer: never a 5xx; while down, never a 250; and how each
	// node fared after the restart.
	var whileDown, whileDown4xx, dropped, retried int
	tookAfter := make([]int, len(nodes))
	uncertain := map[int]int{} // delivery -> failed attempts that may have committed
	for i := range total {
		as := attempts[i]
		if len(as) > 1 {
			retried++
		}
		for _, a := range as {
			down := a.start.After(downAt) && a.end.Before(upAt)
			switch {
			case a.err != nil:
				dropped++
				t.Errorf("delivery %d through node %c at %s: no answer: %v", i, 'a'+a.node, a.start.Sub(downAt), a.err)
			case a.code >= 500:
				t.Errorf("delivery %d through node %c at %s (after the stop): %d, never a 5xx", i, 'a'+a.node, a.start.Sub(downAt), a.code)
			case down && a.code == 250:
				t.Errorf("delivery %d through node %c acknowledged while the database was down", i, 'a'+a.node)
			}
			if down {
				whileDown++
				if a.code >= 400 && a.code < 500 {
					whileDown4xx++
				}
			}
			if a.code == 250 && a.start.After(upAt) {
				tookAfter[a.node]++
			}
			if a.code != 250 && a.start.Before(downAt) {
				uncertain[i]++ // cut off by the stop: its COMMIT may have landed
			}
		}
		if !acked[i] {
			t.Errorf("delivery %d never acknowledged after %d tries: last %+v", i, len(as), as[len(as)-1])
		}
	}
	t.Logf("%d deliveries, %d retried; %d answers while the database was down (%d of them 4xx), %d without an answer; after the restart nodes a, b, c acknowledged %v; %d cut off by the stop",
		total, retried, whileDown, whileDown4xx, dropped, tookAfter, len(uncertain))
	if whileDown < len(nodes) {
		t.Errorf("only %d deliveries tried while the database was down, want load on every node", whileDown)
	}
	for n, k := range tookAfter {
		if k == 0 {
			t.Errorf("node %c acknowledged nothing after the database came back (it did not recover by itself)\n%s", 'a'+n, nodes[n].logs())
		}
	}

	// Through every node, none restarted: each delivery once. A node
	// hears of the others' last commits within its follow interval
	// (500 ms; by polling alone while its LISTEN connection is being
	// opened again after the restart), so a read right after the last
	// 250 may miss a delivery made through another node: read again,
	// for a bounded while, until none is missing.
	lastAck := time.Time{}
	for _, as := range attempts {
		if a := as[len(as)-1]; a.end.After(lastAck) {
			lastAck = a.end
		}
	}
	for n, node := range nodes {
		var count map[int]int
		for {
			out := imapSession(t, node.imap, "alice", "alice-pw", "SELECT INBOX", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
			count = map[int]int{}
			for _, m := range regexp.MustCompile(`Subject: m(\d{3})`).FindAllStringSubmatch(out, -1) {
				i, _ := strconv.Atoi(m[1])
				count[i]++
			}
			if len(count) == total || time.Since(lastAck) > 5*time.Second {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(count) == total {
			t.Logf("node %c shows every delivery %s after the last 250", 'a'+n, time.Since(lastAck).Round(time.Millisecond))
		}
		stored := 0
		for i := range total {
			stored += count[i]
			switch {
			case count[i] == 0:
				t.Errorf("node %c: delivery %d (acknowledged %v) is not in the mailbox", 'a'+n, i, acked[i])
			case count[i] > 1+uncertain[i]:
				t.Errorf("node %c: delivery %d is in the mailbox %d times (%d attempts cut off by the stop): %+v", 'a'+n, i, count[i], uncertain[i], attempts[i])
			case count[i] > 1:
				t.Logf("node %c: delivery %d is there %d times: an attempt cut off by the stop had committed (at least once)", 'a'+n, i, count[i])
			}
		}
		t.Logf("node %c shows %d messages", 'a'+n, stored)
	}
}

// lmtpAttempt runs one LMTP transaction and returns the first reply code
// that was not the one wanted (250 when the data was acknowledged), or an
// error when the connection failed before a reply.
func lmtpAttempt(addr, rcpt, raw string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	for _, step := range []struct {
		cmd  string
		want int
	}{
		{"", 220},
		{"LHLO test.example", 250},
		{"MAIL FROM:<sender@example.net>", 250},
		{"RCPT TO:<" + rcpt + ">", 250},
		{"DATA", 354},
		{raw + ".", 250},
	} {
		if step.cmd != "" {
			if _, err := fmt.Fprint(conn, step.cmd+"\r\n"); err != nil {
				return 0, err
			}
		}
		var line string
		for {
			if line, err = r.ReadString('\n'); err != nil {
				return 0, fmt.Errorf("after %q: %w", step.cmd, err)
			}
			if len(line) < 4 || line[3] != '-' {
				break
			}
		}
		code, err := strconv.Atoi(line[:min(3, len(line))])
		if err != nil {
			return 0, fmt.Errorf("after %q: reply %q", step.cmd, line)
		}
		if code != step.want {
			return code, nil
		}
	}
	fmt.Fprint(conn, "QUIT\r\n")
	return 250, nil
}

// imapRaw is an IMAP session whose tagged answers, NO included, are
// returned rather than failing the test; a dropped connection fails it.
type imapRaw struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dialIMAPRaw(t *testing.T, addr string) *imapRaw {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &imapRaw{t: t, conn: conn, r: bufio.NewReader(conn)}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := s.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("IMAP greeting: %q %v", l, err)
	}
	return s
}

// cmd runs one command and returns its tagged status ("OK ...", "NO
// ...").
func (s *imapRaw) cmd(line string) string {
	s.t.Helper()
	s.n++
	tag := fmt.Sprintf("r%d", s.n)
	fmt.Fprintf(s.conn, "%s %s\r\n", tag, line)
	s.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("IMAP %s: connection lost: %v", line, err)
		}
		if st, ok := strings.CutPrefix(l, tag+" "); ok {
			return strings.TrimSpace(st)
		}
	}
}
