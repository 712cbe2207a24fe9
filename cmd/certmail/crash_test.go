package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestCrashDurability is the durability requirement: deliver 500
// messages concurrently over LMTP, kill -9 the server once about half are
// acknowledged, restart it, and check that every message that got 250 is
// in the store exactly once and that nothing is duplicated.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills servers")
	}
	const (
		total   = 500
		conns   = 20
		killAt  = 250
		account = "alice"
	)
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", account, "--password-stdin", "--data", dir).must(t, 0)
	srv := startServer(t, dir)

	var (
		mu       sync.Mutex
		acked    = make(map[int]bool)
		attempts = make(map[int]bool) // DATA sent, outcome known or not
		half     = make(chan struct{})
		halfOnce sync.Once
	)
	work := make(chan int, total)
	for i := range total {
		work <- i
	}
	close(work)

	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", srv.lmtp)
			if err != nil {
				return
			}
			c := smtp.NewClientLMTP(conn)
			defer c.Close()
			if err := c.Hello("mta.test"); err != nil {
				return
			}
			for i := range work {
				if err := sendOne(c, i, account, func() {
					mu.Lock()
					attempts[i] = true
					mu.Unlock()
				}); err != nil {
					// The server is gone: this connection is done. Its
					// message may or may not have been stored.
					return
				}
				mu.Lock()
				acked[i] = true
				n := len(acked)
				mu.Unlock()
				if n >= killAt {
					halfOnce.Do(func() { close(half) })
				}
			}
		}()
	}

	select {
	case <-half:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d acks after 60s:\n%s", len(acked), srv.logs())
	}
	srv.kill(t)
	wg.Wait()

	mu.Lock()
	nAcked, nAttempted := len(acked), len(attempts)
	mu.Unlock()
	t.Logf("killed the server after %d acks; %d messages were sent", nAcked, nAttempted)
	if nAcked == total {
		t.Log("every message was acknowledged before the kill landed; the test still checks for duplicates")
	}

	// Restart on the same directory: Badger recovers, the stale admin
	// socket is replaced, and the server delivers again.
	srv2 := startServer(t, dir)
	conn, err := net.Dial("tcp", srv2.lmtp)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	if err := c.Hello("mta.test"); err != nil {
		t.Fatal(err)
	}
	if err := sendOne(c, total, account, func() {}); err != nil {
		t.Fatalf("delivering after restart: %v", err)
	}
	c.Close()
	certmail(t, "", "user", "list", "--data", dir).must(t, 0)
	srv2.stop(t)

	st := openStore(t, dir)
	idRE := regexp.MustCompile(`(?m)^Message-ID: <crash-(\d+)@test>\r$`)
	count := make(map[int]int)
	for _, raw := range inbox(t, st, account) {
		m := idRE.FindSubmatch(raw)
		if m == nil {
			t.Fatalf("message without a test Message-ID: %q", raw)
		}
		var id int
		fmt.Sscan(string(m[1]), &id)
		count[id]++
		if want := message(id, account); string(asSent(raw)) != want {
			t.Fatalf("message %d stored as %q, want %q", id, raw, want)
		}
	}
	for id := range acked {
		if count[id] != 1 {
			t.Errorf("acknowledged message %d stored %d times", id, count[id])
		}
	}
	for id, n := range count {
		if n > 1 {
			t.Errorf("message %d stored %d times", id, n)
		}
		if id < total && !attempts[id] {
			t.Errorf("message %d stored but never sent", id)
		}
	}
	if count[total] != 1 {
		t.Errorf("message delivered after the restart stored %d times", count[total])
	}
	t.Logf("stored %d messages (%d acknowledged before the kill, plus 1 after the restart)", len(count), nAcked)
}

func message(i int, to string) string {
	return fmt.Sprintf("From: sender@example.net\r\nTo: %s@example.org\r\nMessage-ID: <crash-%d@test>\r\nSubject: message %d\r\n\r\nbody of message %d\r\n", to, i, i, i)
}

// sendOne runs one LMTP transaction; sent is called once DATA starts.
func sendOne(c *smtp.Client, i int, to string, sent func()) error {
	if err := c.Mail("sender@example.net", nil); err != nil {
		return err
	}
	if err := c.Rcpt(to+"@example.org", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	sent()
	if _, err := w.Write([]byte(message(i, to))); err != nil {
		return err
	}
	_, err = w.CloseWithLMTPResponse()
	return err
}

// TestGracefulShutdown: SIGTERM while deliveries run. The server exits 0,
// every acknowledged message is stored exactly once, and connections that
// were refused got a temporary (4xx) answer, never a permanent one.
func TestGracefulShutdown(t *testing.T) {
	const total, conns, stopAt = 300, 10, 100
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	srv := startServer(t, dir)

	var (
		mu       sync.Mutex
		acked    = make(map[int]bool)
		permFail []error
		half     = make(chan struct{})
		once     sync.Once
	)
	work := make(chan int, total)
	for i := range total {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", srv.lmtp)
			if err != nil {
				return
			}
			c := smtp.NewClientLMTP(conn)
			defer c.Close()
			if err := c.Hello("mta.test"); err != nil {
				return
			}
			for i := range work {
				if err := sendOne(c, i, "alice", func() {}); err != nil {
					var se *smtp.SMTPError
					if errors.As(err, &se) && !se.Temporary() {
						mu.Lock()
						permFail = append(permFail, err)
						mu.Unlock()
					}
					return
				}
				mu.Lock()
				acked[i] = true
				if len(acked) >= stopAt {
					once.Do(func() { close(half) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-half:
	case <-time.After(60 * time.Second):
		t.Fatalf("too slow:\n%s", srv.logs())
	}
	srv.stop(t) // SIGTERM, exit 0
	wg.Wait()
	if len(permFail) > 0 {
		t.Fatalf("permanent failures during shutdown: %v", permFail)
	}

	st := openStore(t, dir)
	idRE := regexp.MustCompile(`(?m)^Message-ID: <crash-(\d+)@test>\r$`)
	count := make(map[int]int)
	for _, raw := range inbox(t, st, "alice") {
		m := idRE.FindSubmatch(raw)
		if m == nil {
			t.Fatalf("unexpected message %q", raw)
		}
		var id int
		fmt.Sscan(string(m[1]), &id)
		count[id]++
	}
	for id := range acked {
		if count[id] != 1 {
			t.Errorf("acknowledged message %d stored %d times", id, count[id])
		}
	}
	for id, n := range count {
		if n > 1 {
			t.Errorf("message %d stored %d times", id, n)
		}
	}
	t.Logf("%d acknowledged, %d stored", len(acked), len(count))
}

// asSent is a message stored over LMTP without the trace fields LMTP
// prepends (Return-Path, Delivered-To; delivery.TestLMTPTraceFields).
func asSent(raw []byte) []byte {
	for _, name := range []string{"Return-Path: ", "Delivered-To: "} {
		if bytes.HasPrefix(raw, []byte(name)) {
			if i := bytes.IndexByte(raw, '\n'); i >= 0 {
				raw = raw[i+1:]
			}
		}
	}
	return raw
}
