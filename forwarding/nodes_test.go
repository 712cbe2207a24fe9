package forwarding

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"certmail/kv/testengine"
	"certmail/mailbox"
)

var engines testengine.Engines

func TestMain(m *testing.M) { os.Exit(engines.Main(m)) }

// openStore opens a store on the suite's engine (Badger, or PostgreSQL
// with CERTMAIL_TEST_ENGINE=postgres).
func openStore(t *testing.T) *mailbox.Store {
	t.Helper()
	st, err := mailbox.Open(mailbox.Options{Dir: t.TempDir(), Engine: engines.Open(t), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestNodesForwardOnce (issue 13): three nodes on one PostgreSQL
// database, each running the forwarding service's timers, with
// hundreds of unread messages whose forward timers are all due at once:
// each message is forwarded exactly once, to its owner's alternate.
func TestNodesForwardOnce(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	const owners, perOwner = 3, 100
	var policies []Policy
	for o := range owners {
		policies = append(policies, Policy{Account: fmt.Sprintf("u%d", o), After: time.Hour, To: []string{fmt.Sprintf("alt%d", o)}, Source: "config"})
	}
	var stores []*mailbox.Store
	var services []*Service
	for range 3 {
		st, err := mailbox.Open(mailbox.Options{Engine: engines.Reopen(t, dsn), GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		svc, err := New(st, Options{ConfigPolicies: policies, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
		services = append(services, svc)
	}
	for o := range owners {
		for _, a := range []string{fmt.Sprintf("u%d", o), fmt.Sprintf("alt%d", o)} {
			if err := stores[0].CreateAccount(a, "pw", mailbox.DefaultMailboxes()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Delivered two hours ago, unread: every forward timer is due.
	past := time.Now().Add(-2 * time.Hour)
	for o := range owners {
		for start := 0; start < perOwner; start += 50 {
			if err := stores[o].Update(func(tx *mailbox.Tx) error {
				for i := start; i < start+50; i++ {
					raw := fmt.Appendf(nil, "Message-ID: <m%d.%d@example.org>\r\nSubject: %d\r\n\r\nbody\r\n", o, i, i)
					if _, err := tx.Append(fmt.Sprintf("u%d", o), "INBOX", raw, mailbox.AppendOptions{InternalDate: past}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if due, err := stores[0].DueTimers(time.Now(), owners*perOwner+1); err != nil || len(due) != owners*perOwner {
		t.Fatalf("%d timers due, want %d (%v)", len(due), owners*perOwner, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	start := time.Now()
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.RunTimers(ctx, 10*time.Millisecond, services[i].Handlers())
		}()
	}
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left, err := stores[0].DueTimers(time.Now(), 1); err == nil && len(left) == 0 {
			break
		}
	}
	took := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	n, err := services[1].Forwards()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d forwards in %v", n, took.Round(time.Millisecond))
	if n != owners*perOwner {
		t.Errorf("%d forwards counted, want %d", n, owners*perOwner)
	}
	for o := range owners {
		_, st, err := stores[2].Status(fmt.Sprintf("alt%d", o), "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages != perOwner {
			t.Errorf("alt%d holds %d forwarded messages, want %d", o, st.Messages, perOwner)
		}
	}
}

// TestNodesPolicySetElsewhere: a policy stored through one node (or by
// the command line against the database) is in force on the others
// within Options.PolicyRefresh, and so is its removal.
func TestNodesPolicySetElsewhere(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	var stores []*mailbox.Store
	var services []*Service
	for range 2 {
		st, err := mailbox.Open(mailbox.Options{Engine: engines.Reopen(t, dsn), GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		svc, err := New(st, Options{PolicyRefresh: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
		services = append(services, svc)
	}
	for _, a := range []string{"u", "alt"} {
		if err := stores[0].CreateAccount(a, "pw", mailbox.DefaultMailboxes()); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func() {
		t.Helper()
		if err := stores[1].Update(func(tx *mailbox.Tx) error {
			_, err := tx.Append("u", "INBOX", []byte("Subject: x\r\n\r\nx\r\n"), mailbox.AppendOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	timers := func() int {
		t.Helper()
		due, err := stores[1].DueTimers(time.Now().Add(2*time.Hour), 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(due)
	}
	if err := services[0].SetPolicy(Policy{Account: "u", After: time.Hour, To: []string{"alt"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := services[1].Policies("u"); len(got) != 1 {
		t.Errorf("the other node lists %d policies of u, want 1", len(got))
	}
	deliver()
	if n := timers(); n != 1 {
		t.Fatalf("a message delivered through the other node has %d forward timers, want 1", n)
	}
	if err := services[0].ClearPolicy("u", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	deliver()
	if n := timers(); n != 1 {
		t.Errorf("after the policy was cleared elsewhere, %d forward timers, want still 1", n)
	}
}
