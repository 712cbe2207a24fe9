package interop

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// rawSession is a line-level IMAP client for checking exactly which
// untagged responses a command gets.
type rawSession struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	n    int
}

func (r *rawSession) line(timeout time.Duration) (string, error) {
	r.conn.SetReadDeadline(time.Now().Add(timeout))
	l, err := r.br.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// cmd sends a command and returns its untagged responses and status.
func (r *rawSession) cmd(line string) ([]string, string) {
	r.t.Helper()
	r.n++
	tag := fmt.Sprintf("r%d", r.n)
	r.conn.Write([]byte(tag + " " + line + "\r\n"))
	var untagged []string
	for {
		l, err := r.line(10 * time.Second)
		if err != nil {
			r.t.Fatalf("%s: %v (so far %q)", line, err, untagged)
		}
		if strings.HasPrefix(l, tag+" ") {
			st := strings.TrimPrefix(l, tag+" ")
			if !strings.HasPrefix(st, "OK") {
				r.t.Fatalf("%s: %s", line, st)
			}
			return untagged, st
		}
		untagged = append(untagged, l)
	}
}

func hasSuffix(lines []string, suffix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, "* ") && strings.HasSuffix(l, suffix) {
			return true
		}
	}
	return false
}

// TestReleaseAnnouncedAfterMove: a stub moved (or copied) into
// Acknowledge releases M into INBOX. The MOVE's own response carries the
// stub's EXPUNGE but no EXISTS for M (Thunderbird ignores an EXISTS there
// and would not show M until its next poll, ten minutes later); the next
// IDLE announces M at once, and so does a NOOP; a second session idling
// on INBOX sees it as always. Sequence numbers stay consistent: after the
// announcements every session's view matches the mailbox.
func TestReleaseAnnouncedAfterMove(t *testing.T) {
	s := startServer(t)
	s.addUser("bob", "bob-pw")
	for i := 1; i <= 3; i++ {
		s.lmtpDeliver(t, "clerk@court.example", "bob@example.org",
			certifiedMessage("Certified-Delivery: deadline=2h\r\n", fmt.Sprintf("held body %d", i)))
	}

	// A second session idles on INBOX with go-imap's client.
	var mu sync.Mutex
	var idlerExists []uint32
	var idlerExpunges []uint32
	idler, err := imapclient.DialInsecure(s.imap, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				mu.Lock()
				idlerExists = append(idlerExists, *d.NumMessages)
				mu.Unlock()
			}
		},
		Expunge: func(seq uint32) {
			mu.Lock()
			idlerExpunges = append(idlerExpunges, seq)
			mu.Unlock()
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idler.Close()
	if err := idler.Login("bob", "bob-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if sel, err := idler.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 3 {
		t.Fatalf("idler SELECT: %v %+v", err, sel)
	}
	idle, err := idler.Idle()
	if err != nil {
		t.Fatal(err)
	}

	conn, br := rawIMAP(t, s.imap)
	r := &rawSession{t: t, conn: conn, br: br}
	r.cmd("LOGIN bob bob-pw")
	if u, _ := r.cmd("SELECT INBOX"); !hasSuffix(u, " 3 EXISTS") {
		t.Fatalf("SELECT: %q", u)
	}
	u, _ := r.cmd("UID FETCH 1:* (UID)")
	if len(u) != 3 {
		t.Fatalf("UID FETCH: %q", u)
	}
	uid := func(l string) string {
		f := strings.Fields(strings.Trim(l[strings.Index(l, "("):], "()"))
		return f[len(f)-1]
	}
	stubs := []string{uid(u[0]), uid(u[1]), uid(u[2])}

	// 1. UID MOVE, then IDLE: the EXISTS comes at once.
	u, _ = r.cmd("UID MOVE " + stubs[0] + " Acknowledge")
	if !hasSuffix(u, " 1 EXPUNGE") || hasSuffix(u, " EXISTS") {
		t.Fatalf("UID MOVE's response: want the stub's EXPUNGE and no EXISTS, got %q", u)
	}
	r.n++
	tag := fmt.Sprintf("r%d", r.n)
	conn.Write([]byte(tag + " IDLE\r\n"))
	if l, err := r.line(5 * time.Second); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q %v", l, err)
	}
	start := time.Now()
	if l, err := r.line(2 * time.Second); err != nil || l != "* 3 EXISTS" {
		t.Fatalf("IDLE after the MOVE: want * 3 EXISTS at once, got %q %v", l, err)
	}
	t.Logf("released message announced %v after IDLE began", time.Since(start).Round(time.Millisecond))
	conn.Write([]byte("DONE\r\n"))
	l, err := r.line(5 * time.Second)
	if strings.HasSuffix(l, " RECENT") {
		// An IMAP4rev1 session hears how many messages are \Recent to
		// it after the EXISTS (RFC 3501 7.3.2): the released one is.
		l, err = r.line(5 * time.Second)
	}
	if err != nil || !strings.HasPrefix(l, tag+" OK") {
		t.Fatalf("DONE: %q %v", l, err)
	}

	// 2. COPY (which withdraws the stub as well), then NOOP.
	u, _ = r.cmd("UID COPY " + stubs[1] + " Acknowledge")
	if hasSuffix(u, " EXISTS") {
		t.Fatalf("UID COPY's response announced the release: %q", u)
	}
	if u, _ = r.cmd("NOOP"); !hasSuffix(u, " 3 EXISTS") {
		t.Fatalf("NOOP after the COPY: want * 3 EXISTS, got %q", u)
	}
	// The view is the mailbox: the last stub and two released messages,
	// by sequence number.
	u, _ = r.cmd("FETCH 1:* (UID)")
	if len(u) != 3 || uid(u[0]) != stubs[2] {
		t.Fatalf("FETCH 1:* after the releases: %q", u)
	}

	// 3. go-imap's client: MOVE, then NOOP.
	var cMu sync.Mutex
	var cExists []uint32
	c, err := imapclient.DialInsecure(s.imap, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				cMu.Lock()
				cExists = append(cExists, *d.NumMessages)
				cMu.Unlock()
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bob", "bob-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var set imap.UIDSet
	var n uint32
	fmt.Sscan(stubs[2], &n)
	set.AddNum(imap.UID(n))
	if _, err := c.Move(set, "Acknowledge").Wait(); err != nil {
		t.Fatal(err)
	}
	cMu.Lock()
	during := len(cExists)
	cMu.Unlock()
	if during != 0 {
		t.Fatalf("go-imap client: EXISTS inside the MOVE response: %v", cExists)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	cMu.Lock()
	got := cExists
	cMu.Unlock()
	if len(got) != 1 || got[0] != 3 {
		t.Fatalf("go-imap client: NOOP after the MOVE gave EXISTS %v, want [3]", got)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("FETCH 1:*: %v, %d messages", err, len(msgs))
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("held body %d", i+1); !strings.Contains(string(m.BodySection[0].Bytes), want) {
			t.Errorf("message %d: want %q:\n%s", i+1, want, m.BodySection[0].Bytes)
		}
	}

	// The idler saw each stub go and each release come, as always.
	waitUntil(t, "the idler's updates", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(idlerExpunges) == 3 && len(idlerExists) == 3
	})
	idle.Close()
	idle.Wait()
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(idlerExpunges, idlerExists) != "[1 1 1] [3 3 3]" {
		t.Fatalf("idler: expunges %v, exists %v", idlerExpunges, idlerExists)
	}
}
