package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The IMAP session mix: what a mail client does when it opens, checks a
// folder, reads, flags, saves a draft and deletes it.

// opNames are the operations of one session, in order.
var opNames = []string{"LOGIN", "LIST", "STATUS", "SELECT", "UID FETCH 1:* FLAGS", "UID FETCH hdrs", "FETCH BODY[]",
	"UID STORE", "APPEND", "STORE \\Deleted", "EXPUNGE", "LOGOUT"}

type mixResult struct {
	ops      int
	elapsed  time.Duration
	lat      []time.Duration // every operation
	perOp    map[string][]time.Duration
	sessions int
	// in and out are the bytes on the wire from and to the server, over
	// every session.
	in, out int64
}

// kbPerSession is what went over the wire from the server per session.
func (r *mixResult) kbPerSession() float64 { return float64(r.in) / 1024 / float64(max(r.sessions, 1)) }

// wireCount counts the bytes a connection reads and writes (the
// client's reader goroutine reads while its caller writes).
type wireCount struct {
	net.Conn
	in, out *atomic.Int64
}

func (c wireCount) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c wireCount) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

func (r *mixResult) opsPerSec() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// runMix runs one client per user for d; with compress, each session
// turns on COMPRESS=DEFLATE (RFC 4978) right after LOGIN.
//
// Client i connects to addr(i) (several nodes: round robin).
func runMix(addr func(i int) string, users []string, password string, d time.Duration, seed uint64, compress bool) (*mixResult, error) {
	res := &mixResult{perOp: make(map[string][]time.Duration)}
	var in, out atomic.Int64
	dial := func(addr, user string) (*imapclient.Client, error) {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return nil, err
		}
		wc := wireCount{Conn: conn, in: &in, out: &out}
		if compress {
			return compressedSession(wc, user, password, nil) // compress.go
		}
		c := imapclient.New(wc, nil)
		if err := c.Login(user, password).Wait(); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for ci, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(ci)))
			dialOne := func(user string) (*imapclient.Client, error) { return dial(addr(ci), user) }
			local := make(map[string][]time.Duration)
			n, sessions := 0, 0
			var err error
			for time.Now().Before(deadline) {
				if err = mixSession(dialOne, u, r, local, &n, seed, ci*1_000_000+sessions); err != nil {
					err = fmt.Errorf("client %d (%s): %w", ci, u, err)
					break
				}
				sessions++
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			res.ops += n
			res.sessions += sessions
			for k, v := range local {
				res.perOp[k] = append(res.perOp[k], v...)
				res.lat = append(res.lat, v...)
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.in, res.out = in.Load(), out.Load()
	return res, firstErr
}

// mixSession is one client session. Each operation's latency is recorded
// under its name.
func mixSession(dial func(user string) (*imapclient.Client, error), user string, r *rand.Rand, lat map[string][]time.Duration, n *int, seed uint64, sessionNo int) error {
	var c *imapclient.Client
	op := func(name string, fn func() error) error {
		t0 := time.Now()
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		lat[name] = append(lat[name], time.Since(t0))
		*n++
		return nil
	}
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	if err := op("LOGIN", func() error {
		var err error
		c, err = dial(user)
		return err
	}); err != nil {
		return err
	}
	if err := op("LIST", func() error {
		_, err := c.List("", "*", nil).Collect()
		return err
	}); err != nil {
		return err
	}
	if err := op("STATUS", func() error {
		_, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true}).Wait()
		return err
	}); err != nil {
		return err
	}
	var sel *imap.SelectData
	if err := op("SELECT", func() error {
		var err error
		sel, err = c.Select("INBOX", nil).Wait()
		return err
	}); err != nil {
		return err
	}
	if sel.NumMessages == 0 {
		return fmt.Errorf("INBOX of %s is empty", user)
	}
	// Flags of every message (a client resynchronising its cache), then
	// the list headers of the newest 50, by UID, as a client shows a
	// folder.
	var uids []imap.UID
	if err := op("UID FETCH 1:* FLAGS", func() error {
		msgs, err := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		for _, m := range msgs {
			uids = append(uids, m.UID)
		}
		if err == nil && len(msgs) != int(sel.NumMessages) {
			err = fmt.Errorf("FLAGS of %d messages, EXISTS %d", len(msgs), sel.NumMessages)
		}
		return err
	}); err != nil {
		return err
	}
	if len(uids) > 50 {
		uids = uids[len(uids)-50:]
	}
	if err := op("UID FETCH hdrs", func() error {
		var set imap.UIDSet
		for _, u := range uids {
			set.AddNum(u)
		}
		msgs, err := c.Fetch(set, &imap.FetchOptions{
			UID: true, Flags: true, RFC822Size: true, InternalDate: true,
			BodySection: []*imap.FetchItemBodySection{{
				Specifier:    imap.PartSpecifierHeader,
				HeaderFields: []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "Content-Type"},
				Peek:         true,
			}},
		}).Collect()
		if err == nil && len(msgs) != len(uids) {
			err = fmt.Errorf("headers of %d messages, asked for %d", len(msgs), len(uids))
		}
		return err
	}); err != nil {
		return err
	}
	if err := op("FETCH BODY[]", func() error {
		seq := 1 + uint32(r.IntN(int(sel.NumMessages)))
		msgs, err := c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{
			UID:         true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err == nil && (len(msgs) != 1 || len(msgs[0].BodySection) != 1 || len(msgs[0].BodySection[0].Bytes) == 0) {
			err = fmt.Errorf("message %d: no body", seq)
		}
		return err
	}); err != nil {
		return err
	}
	if err := op("UID STORE", func() error {
		uid := uids[r.IntN(len(uids))]
		flags := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}
		if r.IntN(2) == 0 {
			flags.Op = imap.StoreFlagsDel
		}
		return c.Store(imap.UIDSetNum(uid), flags, nil).Close()
	}); err != nil {
		return err
	}
	var appended imap.UID
	if err := op("APPEND", func() error {
		raw := message(seed^0xd1a7, sessionNo, user+"@example.org", small)
		cmd := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen, imap.FlagDraft}})
		if _, err := cmd.Write(raw); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		data, err := cmd.Wait()
		if err != nil {
			return err
		}
		if data.UID == 0 {
			return fmt.Errorf("no APPENDUID")
		}
		appended = data.UID
		return nil
	}); err != nil {
		return err
	}
	if err := op("STORE \\Deleted", func() error {
		return c.Store(imap.UIDSetNum(appended), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	}); err != nil {
		return err
	}
	if err := op("EXPUNGE", func() error {
		gone, err := c.Expunge().Collect()
		if err == nil && len(gone) != 1 {
			err = fmt.Errorf("expunged %d messages, want 1", len(gone))
		}
		return err
	}); err != nil {
		return err
	}
	return op("LOGOUT", func() error {
		err := c.Logout().Wait()
		c.Close()
		c = nil
		return err
	})
}

// percentile returns the p-th percentile (0–100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}
