package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The resync workload: a client that knows a large mailbox as of some
// MODSEQ reconnects after others changed the flags of some messages and
// expunged a few, and becomes exact again. With QRESYNC (RFC 7162
// section 3.2.5) that is one SELECT answered with the changes alone;
// without it the client fetches the flags of every message.
//
// go-imap's client has no SELECT ... (QRESYNC ...) and no VANISHED, so
// this client speaks the protocol itself, over a connection that counts
// the bytes each way.

// Metric names of the workload (the table's rows).
const (
	resyncQTime = "Resync with QRESYNC (ms)"
	resyncQKB   = "Resync with QRESYNC, on the wire (KB)"
	resyncFTime = "Resync without QRESYNC, UID FETCH 1:* (FLAGS) (ms)"
	resyncFKB   = "Resync without QRESYNC, on the wire (KB)"
)

// countConn counts the bytes read and written through it.
type countConn struct {
	net.Conn
	in, out int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in += int64(n)
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out += int64(n)
	return n, err
}

// rawIMAP is a minimal IMAP client: one command at a time, untagged lines
// handed to a callback.
type rawIMAP struct {
	conn *countConn
	br   *bufio.Reader
	tag  int
}

func dialRaw(addr string) (*rawIMAP, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	cc := &countConn{Conn: nc}
	c := &rawIMAP{conn: cc, br: bufio.NewReaderSize(cc, 64<<10)}
	nc.SetDeadline(time.Now().Add(10 * time.Minute))
	greeting, err := c.readLine()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if !strings.HasPrefix(greeting, "* OK") {
		nc.Close()
		return nil, fmt.Errorf("greeting: %q", greeting)
	}
	return c, nil
}

func (c *rawIMAP) close() { c.conn.Close() }

// bytes is the traffic so far, both directions.
func (c *rawIMAP) bytes() int64 { return c.conn.in + c.conn.out }

var literalRE = regexp.MustCompile(`\{(\d+)\+?\}$`)

// readLine reads one response line without its CRLF, literals included
// inline (none of the responses read here carry one, but a server may).
func (c *rawIMAP) readLine() (string, error) {
	var sb strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		sb.WriteString(line)
		m := literalRE.FindStringSubmatch(line)
		if m == nil {
			return sb.String(), nil
		}
		n, _ := strconv.Atoi(m[1])
		lit := make([]byte, n)
		if _, err := io.ReadFull(c.br, lit); err != nil {
			return "", err
		}
		sb.Write(lit)
	}
}

// cmd sends one command and reads up to its tagged response, passing
// every untagged line to untagged (if not nil). A response other than OK
// is an error.
func (c *rawIMAP) cmd(line string, untagged func(string) error) error {
	c.tag++
	tag := fmt.Sprintf("r%d", c.tag)
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, line); err != nil {
		return err
	}
	for {
		resp, err := c.readLine()
		if err != nil {
			return fmt.Errorf("%s: %w", line, err)
		}
		if rest, ok := strings.CutPrefix(resp, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return fmt.Errorf("%s: %s", line, rest)
			}
			return nil
		}
		if untagged != nil && strings.HasPrefix(resp, "* ") {
			if err := untagged(resp[2:]); err != nil {
				return fmt.Errorf("%s: %w", line, err)
			}
		}
	}
}

// mailboxView is what a client knows of a mailbox: each message's flags
// by UID, as of a MODSEQ.
type mailboxView struct {
	uidValidity, modseq uint64
	exists              int
	flags               map[uint32]string
}

func (v *mailboxView) clone() *mailboxView {
	out := *v
	out.flags = make(map[uint32]string, len(v.flags))
	for k, f := range v.flags {
		out.flags[k] = f
	}
	return &out
}

var (
	uidRE   = regexp.MustCompile(`\bUID (\d+)`)
	flagsRE = regexp.MustCompile(`\bFLAGS \(([^)]*)\)`)
	codeRE  = regexp.MustCompile(`^OK \[(UIDVALIDITY|HIGHESTMODSEQ) (\d+)\]`)
)

// normFlags sorts a FLAGS list and leaves out \Recent, which says which
// session saw a message first, not a state a client keeps.
func normFlags(list string) string {
	var fs []string
	for _, f := range strings.Fields(list) {
		if !strings.EqualFold(f, `\Recent`) {
			fs = append(fs, f)
		}
	}
	slices.Sort(fs)
	return strings.Join(fs, " ")
}

// apply updates v from one untagged response of SELECT or FETCH.
func (v *mailboxView) apply(line string) error {
	if m := codeRE.FindStringSubmatch(line); m != nil {
		n, _ := strconv.ParseUint(m[2], 10, 64)
		if m[1] == "UIDVALIDITY" {
			v.uidValidity = n
		} else {
			v.modseq = n
		}
		return nil
	}
	if set, ok := strings.CutPrefix(line, "VANISHED (EARLIER) "); ok {
		return v.vanish(set)
	}
	num, rest, _ := strings.Cut(line, " ")
	if _, err := strconv.Atoi(num); err != nil {
		return nil
	}
	switch {
	case rest == "EXISTS":
		v.exists, _ = strconv.Atoi(num)
	case strings.HasPrefix(rest, "FETCH "):
		um := uidRE.FindStringSubmatch(rest)
		fm := flagsRE.FindStringSubmatch(rest)
		if um == nil || fm == nil {
			return fmt.Errorf("FETCH without UID or FLAGS: %q", line)
		}
		uid, _ := strconv.ParseUint(um[1], 10, 32)
		v.flags[uint32(uid)] = normFlags(fm[1])
	}
	return nil
}

// vanish removes a UID set's messages (RFC 7162 section 3.2.10).
func (v *mailboxView) vanish(set string) error {
	for _, r := range strings.Split(strings.TrimSpace(set), ",") {
		a, b, isRange := strings.Cut(r, ":")
		lo, err := strconv.ParseUint(a, 10, 32)
		if err != nil {
			return fmt.Errorf("VANISHED %q: %w", set, err)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(b, 10, 32); err != nil {
				return fmt.Errorf("VANISHED %q: %w", set, err)
			}
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if hi-lo > uint64(len(v.flags)) {
			for uid := range v.flags {
				if uint64(uid) >= lo && uint64(uid) <= hi {
					delete(v.flags, uid)
				}
			}
			continue
		}
		for uid := lo; uid <= hi; uid++ {
			delete(v.flags, uint32(uid))
		}
	}
	return nil
}

// resyncSession opens a session: connect, LOGIN, and the capabilities.
func resyncSession(addr, user, password string) (*rawIMAP, map[string]bool, error) {
	c, err := dialRaw(addr)
	if err != nil {
		return nil, nil, err
	}
	caps := map[string]bool{}
	err = c.cmd(fmt.Sprintf("LOGIN %s %s", user, password), nil)
	if err == nil {
		err = c.cmd("CAPABILITY", func(l string) error {
			if rest, ok := strings.CutPrefix(l, "CAPABILITY "); ok {
				for _, f := range strings.Fields(rest) {
					caps[strings.ToUpper(f)] = true
				}
			}
			return nil
		})
	}
	if err != nil {
		c.close()
		return nil, nil, err
	}
	return c, caps, nil
}

// fullView is the mailbox as a client without QRESYNC learns it: SELECT,
// then every message's flags. It also reports whether the server
// offers QRESYNC, and (if it does) the HIGHESTMODSEQ the view is as of.
func fullView(addr, user, password string) (*mailboxView, bool, int64, error) {
	c, caps, err := resyncSession(addr, user, password)
	if err != nil {
		return nil, false, 0, err
	}
	defer c.close()
	qresync := caps["QRESYNC"]
	v := &mailboxView{flags: map[uint32]string{}}
	sel := "SELECT INBOX"
	if qresync {
		// CONDSTORE on SELECT: HIGHESTMODSEQ in its answer (RFC 7162
		// section 3.1.2.1).
		sel += " (CONDSTORE)"
	}
	if err := c.cmd(sel, v.apply); err != nil {
		return nil, false, 0, err
	}
	if err := c.cmd("UID FETCH 1:* (FLAGS)", v.apply); err != nil {
		return nil, false, 0, err
	}
	n := c.bytes()
	c.cmd("LOGOUT", nil)
	return v, qresync, n, nil
}

// qresyncView brings a known view up to date with one SELECT (QRESYNC).
func qresyncView(addr, user, password string, known *mailboxView) (*mailboxView, int64, error) {
	c, _, err := resyncSession(addr, user, password)
	if err != nil {
		return nil, 0, err
	}
	defer c.close()
	v := known.clone()
	uv := v.uidValidity
	if err := c.cmd("ENABLE QRESYNC", nil); err != nil {
		return nil, 0, err
	}
	if err := c.cmd(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", uv, v.modseq), v.apply); err != nil {
		return nil, 0, err
	}
	if v.uidValidity != uv {
		return nil, 0, fmt.Errorf("UIDVALIDITY changed from %d to %d", uv, v.uidValidity)
	}
	n := c.bytes()
	c.cmd("LOGOUT", nil)
	return v, n, nil
}

// resyncChanges is what another session does between two resyncs: it
// toggles \Flagged on flagN messages, one STORE each, and expunges
// expungeN others. model is updated to match.
func resyncChanges(addr, user, password string, model *mailboxView, flagN, expungeN int, r *rand.Rand) error {
	uids := make([]uint32, 0, len(model.flags))
	for uid := range model.flags {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	if len(uids) < flagN+expungeN {
		return fmt.Errorf("the mailbox has %d messages, fewer than the %d changes", len(uids), flagN+expungeN)
	}
	r.Shuffle(len(uids), func(i, j int) { uids[i], uids[j] = uids[j], uids[i] })
	c, _, err := resyncSession(addr, user, password)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.cmd("SELECT INBOX", nil); err != nil {
		return err
	}
	for _, uid := range uids[:flagN] {
		fs := strings.Fields(model.flags[uid])
		op := "+"
		if slices.Contains(fs, `\Flagged`) {
			op = "-"
			fs = slices.DeleteFunc(fs, func(f string) bool { return f == `\Flagged` })
		} else {
			fs = append(fs, `\Flagged`)
		}
		if err := c.cmd(fmt.Sprintf(`UID STORE %d %sFLAGS.SILENT (\Flagged)`, uid, op), nil); err != nil {
			return err
		}
		model.flags[uid] = normFlags(strings.Join(fs, " "))
	}
	var set []string
	for _, uid := range uids[flagN : flagN+expungeN] {
		set = append(set, strconv.FormatUint(uint64(uid), 10))
		delete(model.flags, uid)
	}
	if err := c.cmd(fmt.Sprintf(`UID STORE %s +FLAGS.SILENT (\Deleted)`, strings.Join(set, ",")), nil); err != nil {
		return err
	}
	if err := c.cmd("EXPUNGE", nil); err != nil {
		return err
	}
	return c.cmd("LOGOUT", nil)
}

// sameView says how got differs from want, or "" if it does not.
func sameView(got, want *mailboxView) string {
	if len(got.flags) != len(want.flags) {
		return fmt.Sprintf("%d messages, want %d", len(got.flags), len(want.flags))
	}
	if got.exists != len(got.flags) {
		return fmt.Sprintf("EXISTS %d, but %d messages known", got.exists, len(got.flags))
	}
	for uid, f := range want.flags {
		g, ok := got.flags[uid]
		if !ok {
			return fmt.Sprintf("UID %d missing", uid)
		}
		if g != f {
			return fmt.Sprintf("UID %d has FLAGS (%s), want (%s)", uid, g, f)
		}
	}
	return ""
}

// resyncState is one server's part of the workload across rounds.
type resyncState struct {
	model   *mailboxView // the truth: the first full view, with every change since applied
	known   *mailboxView // the QRESYNC client's view, as of its last resync
	qresync bool
}

// runResyncRound makes the round's changes on s, then resyncs both ways
// (which first alternates by round) and checks both views against the
// model.
func runResyncRound(s *server, st *resyncState, user, password string, flagN, expungeN, round int, seed uint64, add func(name string, v float64)) error {
	r := rand.New(rand.NewPCG(seed, uint64(round)))
	if err := resyncChanges(s.imap, user, password, st.model, flagN, expungeN, r); err != nil {
		return fmt.Errorf("changes: %w", err)
	}
	full := func() error {
		t0 := time.Now()
		v, _, n, err := fullView(s.imap, user, password)
		d := time.Since(t0)
		if err != nil {
			return fmt.Errorf("full resync: %w", err)
		}
		if diff := sameView(v, st.model); diff != "" {
			return fmt.Errorf("full resync: the view differs from the changes made: %s", diff)
		}
		add(resyncFTime, ms(d))
		add(resyncFKB, float64(n)/1024)
		return nil
	}
	qr := func() error {
		if !st.qresync {
			return nil
		}
		t0 := time.Now()
		v, n, err := qresyncView(s.imap, user, password, st.known)
		d := time.Since(t0)
		if err != nil {
			return fmt.Errorf("QRESYNC resync: %w", err)
		}
		if diff := sameView(v, st.model); diff != "" {
			return fmt.Errorf("QRESYNC resync: the view is not exact: %s", diff)
		}
		if v.modseq <= st.known.modseq {
			return fmt.Errorf("QRESYNC resync: HIGHESTMODSEQ %d did not pass %d after changes", v.modseq, st.known.modseq)
		}
		st.known = v
		add(resyncQTime, ms(d))
		add(resyncQKB, float64(n)/1024)
		return nil
	}
	steps := []func() error{full, qr}
	if round%2 == 1 {
		steps[0], steps[1] = steps[1], steps[0]
	}
	for _, f := range steps {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}
