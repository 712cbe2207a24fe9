package main

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// deliverAll sends n messages over conns concurrent LMTP connections and
// returns the wall time and each message's latency (DATA sent to the 250
// for it). Every message must be accepted.
//
// Connection j goes to addr(j) (several nodes: round robin).
func deliverAll(addr func(j int) string, conns, n int, msg func(i int) (rcpt string, raw []byte)) (time.Duration, []time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	lat := make([]time.Duration, n)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	start := time.Now()
	for j := range min(conns, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", addr(j), 10*time.Second)
			if err != nil {
				fail(err)
				return
			}
			c := smtp.NewClientLMTP(conn)
			defer c.Close()
			if err := c.Hello("certbench.example"); err != nil {
				fail(fmt.Errorf("LHLO: %w", err))
				return
			}
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					break
				}
				mu.Lock()
				failed := firstErr != nil
				mu.Unlock()
				if failed {
					return
				}
				rcpt, raw := msg(i)
				t0 := time.Now()
				if err := sendLMTP(c, rcpt, raw); err != nil {
					fail(fmt.Errorf("message %d to %s: %w", i, rcpt, err))
					return
				}
				lat[i] = time.Since(t0)
			}
			c.Quit()
		}()
	}
	wg.Wait()
	return time.Since(start), lat, firstErr
}

func sendLMTP(c *smtp.Client, rcpt string, raw []byte) error {
	if err := c.Mail("sender@example.net", nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return fmt.Errorf("RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return nil
}
