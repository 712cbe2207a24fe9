package imapsrv_test

// The test harness: a real store in a temporary directory, a real server
// on a loopback port, and two kinds of client: go-imap's imapclient for
// convenience, and a raw line client for sending exactly what real clients
// send and checking exactly what comes back.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"certmail/authguard"
	"certmail/imapsrv"
	"certmail/kv"
	"certmail/kv/pgkv"
	"certmail/mailbox"
)

const testPassword = "secret pw"

// testServer is a store and an IMAP server serving it on 127.0.0.1.
type testServer struct {
	t     testing.TB
	dir   string
	opts  imapsrv.Options
	store *mailbox.Store
	srv   *imapsrv.Server
	addr  string
	done  chan error
	logs  *syncBuffer
	// auth, if set, is the failed-login policy of the server's guard
	// (on the store it opens).
	auth  *authguard.Policy
	guard *authguard.Guard
	// retention, if not zero, is the store's VanishedRetention.
	retention int
	// dsn, if set, is the PostgreSQL database the store runs on instead
	// of Badger in dir (several servers on one: nodes_test.go); pg is
	// the engine opened on it, for its counters.
	dsn string
	pg  *pgkv.Engine
	// noFollow: the store follows no other node's commits (its own
	// polls would count in pg's counters).
	noFollow bool
}

type serverOption func(*imapsrv.Options)

// withLogger gives the server a logger of the test's (the store keeps
// the harness's).
func withLogger(l *slog.Logger) serverOption {
	return func(o *imapsrv.Options) { o.Logger = l }
}

func withAppendLimit(n uint32) serverOption {
	return func(o *imapsrv.Options) { o.AppendLimit = n }
}

// newTestServer starts a server on a fresh store. It is closed when the
// test ends; the test fails if the server logged a panic.
func newTestServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	return newTestServerAuth(t, nil, opts...)
}

// newTestServerAuth is newTestServer with failed logins limited by p.
func newTestServerAuth(t testing.TB, p *authguard.Policy, opts ...serverOption) *testServer {
	t.Helper()
	return startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, auth: p}, opts...)
}

// newTestServerRetention is newTestServer on a store that keeps n
// expunges per mailbox (mailbox.Options.VanishedRetention).
func newTestServerRetention(t testing.TB, n int) *testServer {
	t.Helper()
	return startTestServer(&testServer{t: t, dir: t.TempDir(), logs: &syncBuffer{}, retention: n})
}

func startTestServer(ts *testServer, opts ...serverOption) *testServer {
	t := ts.t
	t.Helper()
	for _, o := range opts {
		o(&ts.opts)
	}
	ts.start()
	t.Cleanup(func() {
		ts.stop()
		if logs := ts.logs.String(); strings.Contains(logs, "panic") {
			t.Errorf("server logged a panic:\n%s", logs)
		}
	})
	return ts
}

// followInterval is the store's FollowInterval: -1 (none) for noFollow.
func followInterval(noFollow bool) time.Duration {
	if noFollow {
		return -1
	}
	return 0
}

func (ts *testServer) start() {
	t := ts.t
	t.Helper()
	logger := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var engine kv.Engine
	if ts.dsn != "" {
		e, err := pgkv.Open(context.Background(), ts.dsn, pgkv.Options{})
		if err != nil {
			t.Fatalf("opening the database: %v", err)
		}
		engine, ts.pg = e, e
	}
	st, err := mailbox.Open(mailbox.Options{
		Engine:     engine,
		Dir:        ts.dir,
		Logger:     logger,
		Summarize:  imapsrv.Summarize,
		GCInterval: -1,

		VanishedRetention: ts.retention,
		FollowInterval:    followInterval(ts.noFollow),
	})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	opts := ts.opts
	if opts.Logger == nil { // withLogger sets one
		opts.Logger = logger
	}
	if ts.auth != nil {
		opts.Auth = authguard.New(st, *ts.auth, logger)
		ts.guard = opts.Auth
	}
	srv := imapsrv.New(st, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.store, ts.srv, ts.addr = st, srv, ln.Addr().String()
	ts.done = make(chan error, 1)
	go func() { ts.done <- srv.Serve(ln) }()
}

func (ts *testServer) stop() {
	if ts.srv == nil {
		return
	}
	ts.srv.Close()
	select {
	case err := <-ts.done:
		if err != nil {
			ts.t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		ts.t.Errorf("Serve did not return after Close")
	}
	if err := ts.store.Close(); err != nil {
		ts.t.Errorf("closing store: %v", err)
	}
	ts.srv, ts.store = nil, nil
}

// restart closes the server and the store and opens both again on the same
// directory, as a process restart would.
func (ts *testServer) restart() {
	ts.t.Helper()
	ts.stop()
	ts.start()
}

// addUser creates an account with the default mailboxes.
func (ts *testServer) addUser(name string) {
	ts.t.Helper()
	if err := ts.store.CreateAccount(name, testPassword, mailbox.DefaultMailboxes()); err != nil {
		ts.t.Fatalf("creating account %s: %v", name, err)
	}
}

// deliver stores a message as LMTP delivery would, bypassing IMAP.
func (ts *testServer) deliver(user, mbox, raw string, flags ...string) uint32 {
	ts.t.Helper()
	var res *mailbox.AppendResult
	err := ts.store.Update(func(tx *mailbox.Tx) error {
		var err error
		res, err = tx.Append(user, mbox, []byte(raw), mailbox.AppendOptions{Flags: flags})
		return err
	})
	if err != nil {
		ts.t.Fatalf("delivering to %s/%s: %v", user, mbox, err)
	}
	return res.UID
}

// deliverN delivers n small distinct messages.
func (ts *testServer) deliverN(user, mbox string, n int) {
	ts.t.Helper()
	for i := 1; i <= n; i++ {
		ts.deliver(user, mbox, simpleMessage(fmt.Sprintf("message %d", i), fmt.Sprintf("body of message %d", i)))
	}
}

// fillShared appends n copies of one stored message to user's INBOX, in
// transactions of 500, flags(i) giving the flags of the i-th (nil: none):
// a large mailbox, cheaply.
func (ts *testServer) fillShared(user string, n int, flags func(i int) []string) {
	ts.t.Helper()
	var blob uint64
	if err := ts.store.Update(func(tx *mailbox.Tx) error {
		var err error
		blob, err = tx.PutBlob([]byte(simpleMessage("shared", "body")))
		return err
	}); err != nil {
		ts.t.Fatal(err)
	}
	for i := 0; i < n; i += 500 {
		if err := ts.store.Update(func(tx *mailbox.Tx) error {
			for j := i; j < i+500 && j < n; j++ {
				var opts mailbox.AppendOptions
				if flags != nil {
					opts.Flags = flags(j)
				}
				if _, err := tx.AppendBlob(user, "INBOX", blob, opts); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			ts.t.Fatal(err)
		}
	}
}

func simpleMessage(subject, body string) string {
	return "From: Alice <alice@example.org>\r\n" +
		"To: Bob <bob@example.org>\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 02 Jan 2006 15:04:05 -0700\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.org>\r\n" +
		"\r\n" +
		body + "\r\n"
}

// --- go-imap client ---

// testClient is an imapclient.Client that records unilateral updates.
type testClient struct {
	*imapclient.Client
	t       testing.TB
	updates chan string
}

// dial connects without logging in.
func (ts *testServer) dial() *testClient {
	ts.t.Helper()
	tc := &testClient{t: ts.t, updates: make(chan string, 1000)}
	push := func(s string) {
		select {
		case tc.updates <- s:
		default:
		}
	}
	opts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Expunge: func(seq uint32) { push(fmt.Sprintf("EXPUNGE %d", seq)) },
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					push(fmt.Sprintf("EXISTS %d", *d.NumMessages))
				}
			},
			Fetch: func(msg *imapclient.FetchMessageData) {
				buf, err := msg.Collect()
				if err != nil {
					push("FETCH error " + err.Error())
					return
				}
				push(fmt.Sprintf("FETCH %d UID %d FLAGS %s", buf.SeqNum, buf.UID, flagString(buf.Flags)))
			},
		},
	}
	c, err := imapclient.DialInsecure(ts.addr, opts)
	if err != nil {
		ts.t.Fatalf("dialing: %v", err)
	}
	tc.Client = c
	ts.t.Cleanup(func() { c.Close() })
	return tc
}

// client returns a client logged in as user.
func (ts *testServer) client(user string) *testClient {
	ts.t.Helper()
	tc := ts.dial()
	if err := tc.Login(user, testPassword).Wait(); err != nil {
		ts.t.Fatalf("login as %s: %v", user, err)
	}
	return tc
}

// selectBox selects a mailbox or fails the test.
func (tc *testClient) selectBox(name string) *imap.SelectData {
	tc.t.Helper()
	d, err := tc.Select(name, nil).Wait()
	if err != nil {
		tc.t.Fatalf("SELECT %s: %v", name, err)
	}
	return d
}

// nextUpdate waits for the next unilateral update.
func (tc *testClient) nextUpdate(timeout time.Duration) (string, bool) {
	select {
	case u := <-tc.updates:
		return u, true
	case <-time.After(timeout):
		return "", false
	}
}

// expectUpdates waits for exactly these updates, in order.
func (tc *testClient) expectUpdates(timeout time.Duration, want ...string) {
	tc.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, w := range want {
		u, ok := tc.nextUpdate(time.Until(deadline))
		if !ok {
			tc.t.Fatalf("timed out waiting for update %q", w)
		}
		if u != w {
			tc.t.Fatalf("update: got %q, want %q", u, w)
		}
	}
}

// drainUpdates discards pending updates.
func (tc *testClient) drainUpdates() {
	for {
		select {
		case <-tc.updates:
		default:
			return
		}
	}
}

// flagString spells flags as a test expects them, without \Recent
// (see rawClient.ShowRecent; recent_test.go tests it).
func flagString(flags []imap.Flag) string {
	s := make([]string, 0, len(flags))
	for _, f := range flags {
		if f != `\Recent` {
			s = append(s, string(f))
		}
	}
	return "(" + strings.Join(s, " ") + ")"
}

// appendMsg appends with the go-imap client.
func (tc *testClient) appendMsg(mbox, raw string, opts *imap.AppendOptions) *imap.AppendData {
	tc.t.Helper()
	cmd := tc.Append(mbox, int64(len(raw)), opts)
	if _, err := io.WriteString(cmd, raw); err != nil {
		tc.t.Fatalf("APPEND write: %v", err)
	}
	if err := cmd.Close(); err != nil {
		tc.t.Fatalf("APPEND close: %v", err)
	}
	d, err := cmd.Wait()
	if err != nil {
		tc.t.Fatalf("APPEND %s: %v", mbox, err)
	}
	return d
}

// --- raw line client ---

// rawClient speaks IMAP line by line: the test writes exactly what a
// client would and reads every response line. A literal in a response is
// inlined into the line that announced it ("{n}\r\n" followed by n bytes).
type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	tag  int
	// Greeting is the server's first line.
	Greeting string
	// ShowRecent keeps what a rev1 session hears of \Recent (RFC 3501
	// 2.3.2): the flag in FETCH responses and the RECENT responses.
	// Off, the client drops them, so that tests of other things compare
	// flags and responses as before; recent_test.go turns it on.
	ShowRecent bool
}

var recentLine = regexp.MustCompile(`^\* \d+ RECENT$`)

// hideRecent drops \Recent from a response (see ShowRecent); skip says
// the response is a RECENT one.
func hideRecent(line string) (out string, skip bool) {
	if recentLine.MatchString(line) {
		return "", true
	}
	if strings.Contains(line, " FETCH (") {
		line = strings.Replace(line, `FLAGS (\Recent)`, `FLAGS ()`, 1)
		line = strings.Replace(line, `FLAGS (\Recent `, `FLAGS (`, 1)
	}
	return line, false
}

// raw connects a raw client and reads the greeting.
func (ts *testServer) raw() *rawClient {
	ts.t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		ts.t.Fatalf("dialing: %v", err)
	}
	rc := &rawClient{t: ts.t, conn: conn, br: bufio.NewReader(conn)}
	ts.t.Cleanup(func() { conn.Close() })
	rc.Greeting = rc.readLine()
	if !strings.HasPrefix(rc.Greeting, "* OK ") {
		ts.t.Fatalf("greeting: %q", rc.Greeting)
	}
	return rc
}

// rawLogin connects a raw client logged in as user.
func (ts *testServer) rawLogin(user string) *rawClient {
	ts.t.Helper()
	rc := ts.raw()
	rc.ok(fmt.Sprintf(`LOGIN %s "%s"`, user, testPassword))
	return rc
}

// write sends s as is (the caller adds CRLF).
func (rc *rawClient) write(s string) {
	rc.t.Helper()
	rc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(rc.conn, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

var literalAtEnd = regexp.MustCompile(`\{(\d+)\}$`)

// readLine reads one response, with literals inlined, without the
// final CRLF.
func (rc *rawClient) readLine() string {
	rc.t.Helper()
	line, err := rc.tryReadLine(10 * time.Second)
	if err != nil {
		rc.t.Fatalf("reading response: %v", err)
	}
	return line
}

func (rc *rawClient) tryReadLine(timeout time.Duration) (string, error) {
	for {
		line, err := rc.tryReadOne(timeout)
		if err != nil || rc.ShowRecent {
			return line, err
		}
		if line, skip := hideRecent(line); !skip {
			return line, nil
		}
	}
}

func (rc *rawClient) tryReadOne(timeout time.Duration) (string, error) {
	rc.conn.SetReadDeadline(time.Now().Add(timeout))
	var out strings.Builder
	for {
		part, err := rc.br.ReadString('\n')
		if err != nil {
			return out.String() + part, err
		}
		part = strings.TrimSuffix(strings.TrimSuffix(part, "\n"), "\r")
		out.WriteString(part)
		m := literalAtEnd.FindStringSubmatch(part)
		if m == nil {
			return out.String(), nil
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(rc.br, buf); err != nil {
			return out.String(), err
		}
		out.WriteString("\r\n")
		out.Write(buf)
	}
}

// nextTag returns a fresh tag.
func (rc *rawClient) nextTag() string {
	rc.tag++
	return fmt.Sprintf("t%d", rc.tag)
}

// cmd sends a tagged command line and returns the untagged responses and
// the tagged completion (without the tag).
func (rc *rawClient) cmd(line string) (untagged []string, status string) {
	rc.t.Helper()
	tag := rc.nextTag()
	rc.write(tag + " " + line + "\r\n")
	return rc.readUntilTagged(tag)
}

// readUntilTagged reads responses until the one tagged tag.
func (rc *rawClient) readUntilTagged(tag string) (untagged []string, status string) {
	rc.t.Helper()
	for {
		line := rc.readLine()
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, line)
	}
}

// ok sends a command that must succeed and returns its untagged responses.
func (rc *rawClient) ok(line string) []string {
	rc.t.Helper()
	untagged, status := rc.cmd(line)
	if !strings.HasPrefix(status, "OK") {
		rc.t.Fatalf("%s: got %q (untagged %q)", line, status, untagged)
	}
	return untagged
}

// fail sends a command that must fail with the status prefix ("NO",
// "BAD", or a longer prefix such as "NO [TRYCREATE]") and returns the
// status line.
func (rc *rawClient) fail(prefix, line string) string {
	rc.t.Helper()
	untagged, status := rc.cmd(line)
	if !strings.HasPrefix(status, prefix) {
		rc.t.Fatalf("%s: got %q (untagged %q), want %s", line, status, untagged, prefix)
	}
	return status
}

// rejects checks that a malformed command gets BAD (never an internal
// error: go-imap answered malformed number sets, search keys, dates and
// mailbox names with NO [SERVERBUG] until third_party/go-imap was
// patched) and that the connection survives. It returns the status.
func rejects(t testing.TB, rc *rawClient, line string) string {
	t.Helper()
	untagged, status := rc.cmd(line)
	if !strings.HasPrefix(status, "BAD") {
		t.Errorf("%s: got %q (untagged %q), want BAD", line, status, untagged)
	}
	rc.alive()
	return status
}

// alive checks that the connection still answers commands.
func (rc *rawClient) alive() {
	rc.t.Helper()
	rc.ok("NOOP")
}

// --- helpers on response lines ---

// grep returns the lines that contain substr.
func grep(lines []string, substr string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// mustContain fails unless some line contains every one of substrs.
func mustContain(t testing.TB, lines []string, substrs ...string) string {
	t.Helper()
	for _, l := range lines {
		all := true
		for _, s := range substrs {
			if !strings.Contains(l, s) {
				all = false
				break
			}
		}
		if all {
			return l
		}
	}
	t.Fatalf("no response line contains %q in:\n%s", substrs, strings.Join(lines, "\n"))
	return ""
}

// mustNotContain fails if any line contains substr.
func mustNotContain(t testing.TB, lines []string, substr string) {
	t.Helper()
	for _, l := range lines {
		if strings.Contains(l, substr) {
			t.Fatalf("unexpected %q in %q", substr, l)
		}
	}
}

// codeNumber extracts the number after a response code, as in
// "[UIDVALIDITY 123]".
func codeNumber(t testing.TB, lines []string, code string) uint32 {
	t.Helper()
	re := regexp.MustCompile(`\[` + code + ` (\d+)\]`)
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 32)
			return uint32(n)
		}
	}
	t.Fatalf("no [%s n] in %q", code, lines)
	return 0
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
