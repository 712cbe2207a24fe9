package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Several `certmail serve` nodes on one PostgreSQL database (issue 13):
// the real binary, three processes, one private cluster.

// startNodes makes a store in a fresh database with the accounts given
// (name, password), then starts n nodes on it, each with a data
// directory of its own holding the first one's gateway key, with IMAP,
// LMTP and HTTP on free loopback ports.
func startNodes(t *testing.T, n int, accounts ...string) (dsn string, dirs []string, nodes []*server) {
	t.Helper()
	dsn = pg.DB(t)
	first := t.TempDir()
	for i := 0; i+1 < len(accounts); i += 2 {
		certmail(t, accounts[i+1]+"\n", "user", "add", accounts[i], "--password-stdin", "--store", dsn, "--data", first).must(t, 0)
	}
	key, err := os.ReadFile(filepath.Join(first, "gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		dir := first
		if i > 0 {
			dir = t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "gateway.key"), key, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		dirs = append(dirs, dir)
		nodes = append(nodes, startNode(t, dsn, dir, i))
	}
	return dsn, dirs, nodes
}

// startNode starts node i ('a'+i) on the database dsn with data
// directory dir.
func startNode(t *testing.T, dsn, dir string, i int) *server {
	t.Helper()
	return startServer(t, dir, "--store", dsn, "--node", string(rune('a'+i)), "--imap", "127.0.0.1:0")
}

// imapConn is one IMAP session kept open (for IDLE).
type imapConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dialIMAP(t *testing.T, addr, user, pass string) *imapConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &imapConn{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.readLine(10 * time.Second) // greeting
	c.cmd("LOGIN " + user + " " + pass)
	return c
}

func (c *imapConn) readLine(wait time.Duration) (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(wait))
	return c.r.ReadString('\n')
}

// cmd runs one command and returns its untagged answers; anything but
// OK fails the test.
func (c *imapConn) cmd(line string) string {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("c%d", c.n)
	fmt.Fprintf(c.conn, "%s %s\r\n", tag, line)
	var out strings.Builder
	for {
		l, err := c.readLine(30 * time.Second)
		if err != nil {
			c.t.Fatalf("%s: %v", line, err)
		}
		if st, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(st, "OK") {
				c.t.Fatalf("%s: %s", line, st)
			}
			return out.String()
		}
		out.WriteString(l)
	}
}

// idle starts IDLE and returns once the server is idling.
func (c *imapConn) idle() {
	c.t.Helper()
	c.n++
	fmt.Fprintf(c.conn, "c%d IDLE\r\n", c.n)
	l, err := c.readLine(10 * time.Second)
	if err != nil || !strings.HasPrefix(l, "+") {
		c.t.Fatalf("IDLE: %q %v", l, err)
	}
}

// await reads untagged answers until one matches re, and returns how long
// that took; it fails the test after wait.
func (c *imapConn) await(re *regexp.Regexp, wait time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	var seen []string
	for {
		left := wait - time.Since(start)
		if left <= 0 {
			c.t.Fatalf("no %s within %s; heard %q", re, wait, seen)
		}
		l, err := c.readLine(left)
		if err != nil {
			c.t.Fatalf("no %s within %s (%v); heard %q", re, wait, err, seen)
		}
		seen = append(seen, l)
		if re.MatchString(l) {
			return time.Since(start)
		}
	}
}

// TestNodesIdleAcrossNodes: three nodes on one database. A message
// delivered over LMTP to node A reaches an IDLE session on node B within
// a second; flags stored through B reach an IDLE session on node C
// within a second.
func TestNodesIdleAcrossNodes(t *testing.T) {
	_, _, nodes := startNodes(t, 3, "alice", "alice-pw")
	a, b, c := nodes[0], nodes[1], nodes[2]

	onB := dialIMAP(t, b.imap, "alice", "alice-pw")
	if out := onB.cmd("SELECT INBOX"); !strings.Contains(out, "* 0 EXISTS") {
		t.Fatalf("SELECT on B: %s", out)
	}
	onB.idle()
	sent := time.Now()
	if err := lmtpTry(a.lmtp, "alice@example.org", "Subject: across\r\n\r\ndelivered through A\r\n"); err != nil {
		t.Fatal(err)
	}
	took := onB.await(regexp.MustCompile(`^\* 1 EXISTS`), 10*time.Second)
	t.Logf("delivered through A, heard on B's IDLE %s after the 250 (%s after sending)", took, time.Since(sent))
	if took > time.Second {
		t.Fatalf("B's IDLE heard of A's delivery after %s, want within 1s", took)
	}

	onC := dialIMAP(t, c.imap, "alice", "alice-pw")
	if out := onC.cmd("SELECT INBOX"); !strings.Contains(out, "* 1 EXISTS") {
		t.Fatalf("SELECT on C: %s", out)
	}
	onC.idle()
	store := dialIMAP(t, b.imap, "alice", "alice-pw")
	store.cmd("SELECT INBOX")
	store.cmd(`STORE 1 +FLAGS (\Flagged)`)
	took = onC.await(regexp.MustCompile(`^\* 1 FETCH .*\\Flagged`), 10*time.Second)
	t.Logf("flag stored through B, heard on C's IDLE %s after the OK", took)
	if took > time.Second {
		t.Fatalf("C's IDLE heard of B's flag after %s, want within 1s", took)
	}
}

// lmtpTry runs one LMTP transaction without failing the test: nil means
// the server answered 250 to the data (the message is acknowledged).
func lmtpTry(addr, rcpt, raw string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	reply := func() (string, error) {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			if len(line) < 4 || line[3] != '-' {
				return line, nil
			}
		}
	}
	for _, step := range []struct{ cmd, want string }{
		{"", "220"},
		{"LHLO test.example", "250"},
		{"MAIL FROM:<sender@example.net>", "250"},
		{"RCPT TO:<" + rcpt + ">", "250"},
		{"DATA", "354"},
		{raw + ".", "250"},
	} {
		if step.cmd != "" {
			if _, err := fmt.Fprint(conn, step.cmd+"\r\n"); err != nil {
				return err
			}
		}
		got, err := reply()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(got, step.want) {
			return fmt.Errorf("%q: %q", step.cmd, got)
		}
	}
	fmt.Fprint(conn, "QUIT\r\n")
	return nil
}

// TestNodesKillDuringDeliveries: 500 LMTP deliveries spread over three
// nodes, eight at a time, and node C killed with SIGKILL a third of the
// way through. Every delivery answered 250 is in the mailbox exactly
// once, through every node, node C restarted too; one not answered is
// there at most once (its commit may have landed before the kill).
func TestNodesKillDuringDeliveries(t *testing.T) {
	const total, workers = 500, 8
	dsn, dirs, nodes := startNodes(t, 3, "alice", "alice-pw")
	var (
		mu     sync.Mutex
		acked  = map[int]bool{}
		failed = map[int]error{}
		next   int
		killed bool
		wg     sync.WaitGroup
	)
	deadline := time.Now().Add(2 * time.Minute)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				mu.Lock()
				i := next
				next++
				if i == total/3 && !killed {
					killed = true
					nodes[2].cmd.Process.Kill() // kill -9, while the others deliver
				}
				mu.Unlock()
				if i >= total {
					return
				}
				node := nodes[i%3]
				err := lmtpTry(node.lmtp, "alice@example.org", fmt.Sprintf("Subject: m%03d\r\nMessage-ID: <m%03d@test>\r\n\r\nmessage %03d\r\n", i, i, i))
				mu.Lock()
				if err == nil {
					acked[i] = true
				} else {
					failed[i] = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if next < total {
		t.Fatalf("only %d of %d deliveries tried in time", next, total)
	}
	t.Logf("%d deliveries acknowledged, %d not (node c killed after %d)", len(acked), len(failed), total/3)
	// Every node but C took all of its share.
	for i, err := range failed {
		if i%3 != 2 {
			t.Errorf("delivery %d through node %c failed: %v", i, 'a'+i%3, err)
		}
	}
	// Node C again, on the same data directory: every node, the
	// restarted one too, shows each acknowledged message exactly once.
	nodes[2] = startNode(t, dsn, dirs[2], 2)
	for n, node := range nodes {
		out := imapSession(t, node.imap, "alice", "alice-pw", "SELECT INBOX", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
		count := map[int]int{}
		for _, m := range regexp.MustCompile(`Subject: m(\d{3})`).FindAllStringSubmatch(out, -1) {
			var i int
			fmt.Sscanf(m[1], "%d", &i)
			count[i]++
		}
		stored := 0
		for i := range total {
			stored += count[i]
			switch {
			case acked[i] && count[i] != 1:
				t.Errorf("node %c: acknowledged delivery %d is in the mailbox %d times, want once", 'a'+n, i, count[i])
			case !acked[i] && count[i] > 1:
				t.Errorf("node %c: unacknowledged delivery %d is in the mailbox %d times", 'a'+n, i, count[i])
			}
		}
		t.Logf("node %c shows %d messages", 'a'+n, stored)
	}
}

// TestNodesCertifiedAcrossNodes: a certified item submitted through node
// A's sender API, its stub moved into Acknowledge by the recipient on
// node B: M is released once, seen on node C, and the item's evidence
// bundle, fetched from the database, verifies with the gateway's key.
func TestNodesCertifiedAcrossNodes(t *testing.T) {
	dsn, dirs, nodes := startNodes(t, 3, "alice", "alice-pw")
	a, b, c := nodes[0], nodes[1], nodes[2]
	token := strings.TrimSpace(certmail(t, "", "token", "add", "acme", "--store", dsn, "--data", dirs[0]).must(t, 0).stdout)
	label := submitItem(t, a, token, "alice")

	onB := dialIMAP(t, b.imap, "alice", "alice-pw")
	onB.cmd("SELECT INBOX")
	found := onB.cmd("UID SEARCH HEADER Certified-Label " + label)
	m := regexp.MustCompile(`\* SEARCH (\d+)\r\n`).FindStringSubmatch(found)
	if m == nil {
		t.Fatalf("no stub of %s in alice's INBOX on B: %q", label, found)
	}
	onB.cmd("UID MOVE " + m[1] + " Acknowledge")

	// M, released, is the one message in INBOX, on every node.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := imapSession(t, c.imap, "alice", "alice-pw", "SELECT INBOX", "FETCH 1:* (BODY.PEEK[TEXT])")
		if strings.Contains(out, "Pay by Friday.") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("M not released into alice's INBOX on C within 10s:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a second release would be in by now
	for n, node := range nodes {
		out := imapSession(t, node.imap, "alice", "alice-pw", "SELECT INBOX", "FETCH 1:* (BODY.PEEK[TEXT])")
		if got := strings.Count(out, "Pay by Friday."); got != 1 || !strings.Contains(out, "* 1 EXISTS") {
			t.Fatalf("node %c: M is in alice's INBOX %d times:\n%s", 'a'+n, got, out)
		}
	}

	tmp := t.TempDir()
	bundle, gw := filepath.Join(tmp, "bundle.json"), filepath.Join(tmp, "gateway.pem")
	certmail(t, "", "evidence", label, "-o", bundle, "--gateway-key-out", gw, "--store", dsn, "--data", dirs[2]).must(t, 0)
	if r := certmail(t, "", "verify", bundle, "--gateway-key", gw).must(t, 0); !strings.Contains(r.stdout, "VERIFIED") {
		t.Fatalf("verify: %s", r.stdout)
	}
}
