package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"certmail/kv/pgkv/pgtest"
)

// TestFailoverToPromotedStandby (issue 13): two nodes on a primary with a
// synchronous streaming standby, 200 LMTP deliveries spread over them,
// four at a time. A third of the way through the primary is lost
// (immediate shutdown), the standby is promoted and the nodes are
// restarted pointing at it, and the deliveries go on. Every delivery
// answered 250, before the switch or after, is in the mailbox exactly
// once on both nodes; one cut off by the switch is there at most once.
func TestFailoverToPromotedStandby(t *testing.T) {
	const total, workers = 200, 4
	primary := pgtest.Start(t) // clusters of their own: this test crashes one
	schema, err := primary.CreateSchema(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	standby := primary.StartStandby(t, "standby1")
	dsn := primary.SchemaDSN(schema)

	first := t.TempDir()
	certmail(t, "alice-pw\n", "user", "add", "alice", "--password-stdin", "--store", dsn, "--data", first).must(t, 0)
	key, err := os.ReadFile(filepath.Join(first, "gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	second := t.TempDir()
	if err := os.WriteFile(filepath.Join(second, "gateway.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	dirs := []string{first, second}
	nodes := []*server{startNode(t, dsn, dirs[0], 0), startNode(t, dsn, dirs[1], 1)}

	const (
		before = iota
		switching
		after
	)
	var (
		mu          sync.Mutex
		phase       = before
		acked       = map[int]int{} // delivery -> the phase it started in
		failed      = map[int]error{}
		failedAfter int
		next        int
		wg          sync.WaitGroup
	)
	startSwitch, switched := make(chan struct{}), make(chan struct{})
	deadline := time.Now().Add(3 * time.Minute)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				mu.Lock()
				if phase == switching {
					// An MTA whose deliveries fail waits and tries again
					// later: wait for the nodes to be back.
					mu.Unlock()
					select {
					case <-switched:
					case <-time.After(time.Until(deadline)):
					}
					continue
				}
				i, started := next, phase
				next++
				if i == total/3 {
					phase = switching
					close(startSwitch)
				}
				node := nodes[i%2]
				mu.Unlock()
				if i >= total {
					return
				}
				err := lmtpTry(node.lmtp, "alice@example.org", fmt.Sprintf("Subject: m%03d\r\nMessage-ID: <m%03d@test>\r\n\r\nmessage %03d\r\n", i, i, i))
				mu.Lock()
				if err == nil {
					acked[i] = started
				} else {
					failed[i] = err
					if started == after {
						failedAfter++
					}
				}
				mu.Unlock()
			}
		}()
	}

	select {
	case <-startSwitch:
	case <-time.After(time.Until(deadline)):
		wg.Wait()
		t.Fatalf("the switch never started: %d deliveries tried", next)
	}
	// At once: the deliveries in flight (the one that started the switch
	// among them) run into the loss of the primary.
	primary.Crash(t)
	mu.Lock()
	ackedBefore := len(acked)
	mu.Unlock()
	for _, n := range nodes {
		n.kill(t)
	}
	standby.Promote(t)
	newDSN := standby.SchemaDSN(schema)
	mu.Lock()
	for i := range nodes {
		nodes[i] = startNode(t, newDSN, dirs[i], i)
	}
	phase = after
	mu.Unlock()
	close(switched)
	wg.Wait()

	if next < total {
		t.Fatalf("only %d of %d deliveries tried in time", next, total)
	}
	t.Logf("%d deliveries acknowledged (%d before the primary was lost), %d not", len(acked), ackedBefore, len(failed))
	if ackedBefore == 0 {
		t.Fatal("no delivery acknowledged before the switch")
	}
	if failedAfter > 0 || len(failed) > workers {
		t.Errorf("%d deliveries failed (%d after the switch), want at most the %d in flight at the switch: %v", len(failed), failedAfter, workers, failed)
	}
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
			_, ok := acked[i]
			switch {
			case ok && count[i] != 1:
				t.Errorf("node %c: delivery %d, acknowledged (started %s the switch), is in the mailbox %d times, want once", 'a'+n, i, map[int]string{before: "before", after: "after"}[acked[i]], count[i])
			case !ok && count[i] > 1:
				t.Errorf("node %c: unacknowledged delivery %d is in the mailbox %d times", 'a'+n, i, count[i])
			}
		}
		t.Logf("node %c on the promoted standby shows %d messages", 'a'+n, stored)
	}
}
