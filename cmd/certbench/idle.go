package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// idleResult is the memory a server needs to hold k IDLE sessions.
type idleResult struct {
	sessions int
	mem      mem // summed over the server's processes, all sessions idle for the settle time
	early    mem // a second after the last session started to idle
	base     mem // before the first session
	procs    int
	setup    time.Duration
	// wake is how long until every session saw a message delivered to
	// its mailbox once all were idling (0 if some never did in time).
	wake     time.Duration
	woken    int
	wakeWait time.Duration
}

// runIdle opens k sessions spread over users, each LOGIN, SELECT INBOX,
// IDLE, every compressEvery-th with COMPRESS=DEFLATE after its login (0:
// none); measures the server's RSS; then delivers one message per user
// and waits for every session to hear of it.
func runIdle(s *server, users []string, password string, k, compressEvery int, settle, wakeTimeout time.Duration, atPeak func()) (*idleResult, error) {
	res := &idleResult{sessions: k, wakeWait: wakeTimeout}
	res.base, _ = currentMem(s.pids())
	type sess struct {
		c    *imapclient.Client
		idle *imapclient.IdleCommand
	}
	sessions := make([]sess, k)
	var woken atomic.Int64
	var armed atomic.Bool
	allWoken := make(chan struct{})
	var wokenOnce sync.Once
	defer func() {
		var wg sync.WaitGroup
		for _, ss := range sessions {
			if ss.c == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ss.idle != nil {
					ss.idle.Close()
					ss.idle.Wait()
				}
				ss.c.Logout().Wait()
				ss.c.Close()
			}()
		}
		wg.Wait()
	}()

	start := time.Now()
	work := make(chan int)
	errs := make(chan error, k)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				u := users[i%len(users)]
				var once atomic.Bool
				opts := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
					Mailbox: func(d *imapclient.UnilateralDataMailbox) {
						if d.NumMessages != nil && armed.Load() && once.CompareAndSwap(false, true) {
							if int(woken.Add(1)) == k {
								wokenOnce.Do(func() { close(allWoken) })
							}
						}
					},
				}}
				compressed := compressEvery > 0 && i%compressEvery == 0
				var c *imapclient.Client
				var err error
				if compressed {
					c, err = dialCompressed(s.imapAt(i), u, password, opts) // compress.go
				} else {
					c, err = imapclient.DialInsecure(s.imapAt(i), opts)
				}
				if err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					continue
				}
				sessions[i].c = c
				if !compressed {
					if err := c.Login(u, password).Wait(); err != nil {
						errs <- fmt.Errorf("session %d: LOGIN: %w", i, err)
						continue
					}
				}
				if _, err := c.Select("INBOX", nil).Wait(); err != nil {
					errs <- fmt.Errorf("session %d: SELECT: %w", i, err)
					continue
				}
				idle, err := c.Idle()
				if err != nil {
					errs <- fmt.Errorf("session %d: IDLE: %w", i, err)
					continue
				}
				sessions[i].idle = idle
			}
		}()
	}
	for i := 0; i < k; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	res.setup = time.Since(start)
	// Let the servers settle (login processes exit, buffers shrink,
	// caches go cold).
	time.Sleep(time.Second)
	res.early, _ = currentMem(s.pids())
	if settle > time.Second {
		time.Sleep(settle - time.Second)
	}
	res.mem, res.procs = currentMem(s.pids())
	if atPeak != nil {
		atPeak()
	}

	// One new message per user reaches every session of that user.
	armed.Store(true)
	t0 := time.Now()
	n := min(len(users), k)
	if _, _, err := deliverAll(s.lmtpAt, n, n, func(i int) (string, []byte) {
		return users[i] + "@example.org", message(0x1d1e, i, users[i]+"@example.org", small)
	}); err != nil {
		return nil, fmt.Errorf("delivering to idle sessions: %w", err)
	}
	select {
	case <-allWoken:
		res.wake = time.Since(t0)
	case <-time.After(wakeTimeout):
	}
	res.woken = int(woken.Load())
	return res, nil
}
