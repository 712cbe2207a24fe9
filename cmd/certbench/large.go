package main

import (
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The large mailbox: one INBOX of M messages, and the commands a client
// sends when it opens it.

var largeOps = []string{"SELECT", "UID FETCH 1:* (FLAGS)", "UID SEARCH UNSEEN", "UID SEARCH TEXT",
	"UID SORT (REVERSE ARRIVAL)", "UID SORT (SUBJECT)", "UID THREAD REFERENCES"}

// largeResult is one run over the large mailbox.
type largeResult struct {
	times map[string]time.Duration
	// cpu is the server's CPU time (user+sys, all its processes) per
	// repetition of each command: on a busy machine the wall-clock
	// times above wait for a CPU as much as they work.
	cpu map[string]float64
	// What the server answered, to compare the servers.
	exists, flags, unseen, text int
	// Messages in each SORT's answer and in THREAD's (every one, once).
	sortArrival, sortSubject, threaded int
}

// populateLarge delivers m messages to user over LMTP, then marks the
// older half \Seen so that UNSEEN has something to tell apart.
func populateLarge(s *server, user, password string, m, conns int, seed uint64) (time.Duration, error) {
	rcpt := user + "@example.org"
	elapsed, _, err := deliverAll(s.lmtpAt, conns, m, func(i int) (string, []byte) {
		return rcpt, message(seed, i, rcpt, small)
	})
	if err != nil {
		return elapsed, err
	}
	c, err := imapclient.DialInsecure(s.imap, nil)
	if err != nil {
		return elapsed, err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return elapsed, err
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return elapsed, err
	}
	if int(sel.NumMessages) != m {
		return elapsed, fmt.Errorf("INBOX has %d messages after delivering %d", sel.NumMessages, m)
	}
	half := imap.UID(m / 2)
	if half > 0 {
		if err := c.Store(imap.UIDSet{{Start: 1, Stop: half}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
			return elapsed, fmt.Errorf("marking half \\Seen: %w", err)
		}
	}
	return elapsed, c.Logout().Wait()
}

// firstSelect restarts s (certmail) and times the first SELECT of the
// large mailbox in a new session, checking its count.
func firstSelect(s *server, user, password string, m int) (time.Duration, error) {
	if err := s.restart(); err != nil {
		return 0, err
	}
	c, err := imapclient.DialInsecure(s.imap, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return 0, err
	}
	t0 := time.Now()
	sel, err := c.Select("INBOX", nil).Wait()
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if int(sel.NumMessages) != m {
		return 0, fmt.Errorf("first SELECT: %d messages, want %d", sel.NumMessages, m)
	}
	return d, c.Logout().Wait()
}

// Repetitions of each command per round (the round's figure is their
// median): a single SELECT took a few milliseconds, as long as a
// scheduling hiccup on a busy machine. Now that it takes a third of a
// millisecond on either server, the median of 5 moved by a tenth of one
// from run to run, as much as the servers differ: 21.
const (
	largeQuickReps = 21 // SELECT, UID SEARCH UNSEEN
	largeSlowReps  = 3  // UID FETCH 1:* (FLAGS), UID SEARCH TEXT
)

// runLarge opens the large mailbox in a new session and times each
// command, repeated.
func runLarge(s *server, user, password string) (*largeResult, error) {
	res := &largeResult{times: make(map[string]time.Duration), cpu: make(map[string]float64)}
	c, err := imapclient.DialInsecure(s.imap, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return nil, err
	}
	timed := func(name string, reps int, fn func() error) error {
		var ds []time.Duration
		cpu0 := cpuSeconds(s.cpuRoots())
		defer func() { res.cpu[name] = (cpuSeconds(s.cpuRoots()) - cpu0) / float64(reps) }()
		for i := 0; i < reps; i++ {
			t0 := time.Now()
			if err := fn(); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			ds = append(ds, time.Since(t0))
		}
		res.times[name] = percentile(ds, 50)
		return nil
	}
	if err := timed("SELECT", largeQuickReps, func() error {
		sel, err := c.Select("INBOX", nil).Wait()
		if err == nil {
			res.exists = int(sel.NumMessages)
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := timed("UID FETCH 1:* (FLAGS)", largeSlowReps, func() error {
		res.flags = 0
		cmd := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true})
		for {
			m := cmd.Next()
			if m == nil {
				break
			}
			if _, err := m.Collect(); err != nil {
				cmd.Close()
				return err
			}
			res.flags++
		}
		return cmd.Close()
	}); err != nil {
		return nil, err
	}
	if err := timed("UID SEARCH UNSEEN", largeQuickReps, func() error {
		data, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
		if err == nil {
			res.unseen = len(data.AllUIDs())
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := timed("UID SEARCH TEXT", largeSlowReps, func() error {
		data, err := c.UIDSearch(&imap.SearchCriteria{Text: []string{searchWord}}, nil).Wait()
		if err == nil {
			res.text = len(data.AllUIDs())
		}
		return err
	}); err != nil {
		return nil, err
	}
	// RFC 5256, as webmail lists a mailbox: newest first, by subject, by
	// conversation. Each is run once untimed first: a server may keep
	// sort keys in memory after the first (Dovecot keeps them in its
	// index cache, certmail in a cache of decoded keys), and a client
	// sorts the same mailbox again at every page.
	all := &imap.SearchCriteria{}
	sorts := []struct {
		name string
		key  imapclient.SortCriterion
		n    *int
	}{
		{"UID SORT (REVERSE ARRIVAL)", imapclient.SortCriterion{Key: imapclient.SortKeyArrival, Reverse: true}, &res.sortArrival},
		{"UID SORT (SUBJECT)", imapclient.SortCriterion{Key: imapclient.SortKeySubject}, &res.sortSubject},
	}
	for _, st := range sorts {
		sortOnce := func() error {
			nums, err := c.UIDSort(&imapclient.SortOptions{SearchCriteria: all, SortCriteria: []imapclient.SortCriterion{st.key}}).Wait()
			*st.n = len(nums)
			return err
		}
		if err := sortOnce(); err != nil {
			return nil, fmt.Errorf("%s: %w", st.name, err)
		}
		if err := timed(st.name, largeSlowReps, sortOnce); err != nil {
			return nil, err
		}
	}
	threadOnce := func() error {
		threads, err := c.UIDThread(&imapclient.ThreadOptions{Algorithm: imap.ThreadReferences, SearchCriteria: all}).Wait()
		res.threaded = countThreaded(threads)
		return err
	}
	if err := threadOnce(); err != nil {
		return nil, fmt.Errorf("UID THREAD REFERENCES: %w", err)
	}
	if err := timed("UID THREAD REFERENCES", largeSlowReps, threadOnce); err != nil {
		return nil, err
	}
	return res, c.Logout().Wait()
}

// countThreaded counts the messages in a THREAD answer.
func countThreaded(ts []imapclient.ThreadData) int {
	n := 0
	for _, t := range ts {
		n += len(t.Chain) + countThreaded(t.SubThreads)
	}
	return n
}

// expectedText is how many of m messages contain the search word.
func expectedText(m int) int {
	n := 0
	for i := 0; i < m; i++ {
		if hasSearchWord(i) {
			n++
		}
	}
	return n
}
