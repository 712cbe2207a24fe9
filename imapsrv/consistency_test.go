package imapsrv_test

import (
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"certmail/mailbox"
)

// TestTwoSessionsExpunge: one session expunges while the other goes on
// addressing messages by sequence number. Until the second session is
// told of the expunges (which FETCH, STORE and SEARCH may not do), its
// sequence numbers keep meaning what they meant.
func TestTwoSessionsExpunge(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 10)
	a := ts.rawLogin("alice")
	a.ok(`SELECT INBOX`)
	b := ts.rawLogin("alice")
	b.ok(`SELECT INBOX`)

	b.ok(`UID STORE 3,5,9 +FLAGS.SILENT (\Deleted)`)
	b.ok(`UID EXPUNGE 3,5,9`)

	// A has not been told: FETCH by sequence number still maps 4 -> UID 4
	// and 10 -> UID 10, and sends no EXPUNGE.
	f := a.ok(`FETCH 1:* (UID)`)
	mustNotContain(t, f, "EXPUNGE")
	for _, l := range f {
		var seq, uid int
		if _, err := fmt.Sscanf(l, "* %d FETCH (UID %d", &seq, &uid); err == nil && seq != uid {
			t.Errorf("before EXPUNGE responses, seq %d is UID %d: %q", seq, uid, f)
		}
	}
	// STORE by sequence number hits the message A means.
	mustContain(t, a.ok(`STORE 4 +FLAGS (\Flagged)`), `* 4 FETCH (UID 4 FLAGS (\Flagged))`)
	mustContain(t, a.ok(`STORE 10 +FLAGS (\Answered)`), `* 10 FETCH (UID 10 FLAGS (\Answered))`)
	// SEARCH answers in A's numbering.
	if got := search(t, a, `FLAGGED`); got != "4" {
		t.Errorf("SEARCH FLAGGED before EXPUNGE responses = %q", got)
	}
	if got := search(t, a, `ANSWERED`); got != "10" {
		t.Errorf("SEARCH ANSWERED before EXPUNGE responses = %q", got)
	}
	// COPY by sequence number copies the right messages.
	// (COPY may announce the expunges: keep them.)
	told, st := a.cmd(`COPY 4,10 Archive`)
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("COPY: %q", st)
	}
	ar := ts.rawLogin("alice")
	ar.ok(`EXAMINE Archive`)
	mustContain(t, ar.ok(`FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)])`), "Subject: message 4")
	mustContain(t, ar.ok(`FETCH 2 (BODY.PEEK[HEADER.FIELDS (Subject)])`), "Subject: message 10")

	// NOOP tells A, and the numbering moves on.
	told = append(told, a.ok(`NOOP`)...)
	if got := applyExpunges(t, []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, told); !equalUIDs(got, []uint32{1, 2, 4, 6, 7, 8, 10}) {
		t.Errorf("after NOOP: %v (%q)", got, told)
	}
	if got := uidList(t, a); !equalUIDs(got, []uint32{1, 2, 4, 6, 7, 8, 10}) {
		t.Errorf("A's view: %v", got)
	}
	if got := search(t, a, `FLAGGED`); got != "3" {
		t.Errorf("SEARCH FLAGGED after EXPUNGE responses = %q", got)
	}

	// New mail and expunges interleaved: A learns of both, in order.
	ts.deliverN("alice", "INBOX", 1) // UID 11
	b.ok(`NOOP`)
	b.ok(`UID STORE 1 +FLAGS.SILENT (\Deleted)`)
	b.ok(`UID EXPUNGE 1`)
	ts.deliverN("alice", "INBOX", 1) // UID 12
	up := a.ok(`NOOP`)
	if len(up) < 3 {
		t.Fatalf("updates: %q", up)
	}
	if got := uidList(t, a); !equalUIDs(got, []uint32{2, 4, 6, 7, 8, 10, 11, 12}) {
		t.Errorf("A's view after more changes: %v (%q)", got, up)
	}
}

// TestConcurrentSessions hammers one mailbox from several sessions while
// one more checks that every FETCH it gets agrees with the view its own
// EXISTS and EXPUNGE responses describe.
func TestConcurrentSessions(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 20)
	watcher := ts.rawLogin("alice")
	watcher.ok(`SELECT INBOX`)
	view := make([]uint32, 20) // UID by sequence number; 0 = not yet known
	for i := range view {
		view[i] = uint32(i + 1)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	// A deliverer.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := ts.store.Update(func(tx *mailbox.Tx) error {
				_, err := tx.Append("alice", "INBOX", []byte(simpleMessage(fmt.Sprintf("new %d", i), "x")), mailbox.AppendOptions{})
				return err
			})
			if err != nil {
				errs <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// Two sessions expunging and flagging at random.
	for w := 0; w < 2; w++ {
		wg.Add(1)
		c := ts.rawLogin("alice")
		c.ok(`SELECT INBOX`)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := r.Intn(5) + 1
				if _, st := c.cmd(fmt.Sprintf(`STORE %d +FLAGS.SILENT (\Deleted)`, n)); !strings.HasPrefix(st, "OK") {
					errs <- fmt.Errorf("STORE: %s", st)
					return
				}
				if _, st := c.cmd(`EXPUNGE`); !strings.HasPrefix(st, "OK") {
					errs <- fmt.Errorf("EXPUNGE: %s", st)
					return
				}
				if _, st := c.cmd(fmt.Sprintf(`STORE %d +FLAGS (\Seen)`, r.Intn(5)+1)); !strings.HasPrefix(st, "OK") {
					errs <- fmt.Errorf("STORE: %s", st)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}(int64(w))
	}

	apply := func(cmd string, untagged []string) {
		t.Helper()
		for _, l := range untagged {
			var n, uid uint32
			switch {
			case strings.HasSuffix(l, " EXISTS"):
				fmt.Sscanf(l, "* %d EXISTS", &n)
				if int(n) < len(view) {
					t.Fatalf("EXISTS %d shrinks the view of %d", n, len(view))
				}
				for len(view) < int(n) {
					view = append(view, 0)
				}
			case strings.HasSuffix(l, " EXPUNGE"):
				if strings.HasPrefix(cmd, "FETCH") {
					t.Fatalf("EXPUNGE during FETCH: %q", l)
				}
				fmt.Sscanf(l, "* %d EXPUNGE", &n)
				if n < 1 || int(n) > len(view) {
					t.Fatalf("EXPUNGE %d out of range %d", n, len(view))
				}
				view = append(view[:n-1], view[n:]...)
			case strings.Contains(l, " FETCH ("):
				if _, err := fmt.Sscanf(l, "* %d FETCH (UID %d", &n, &uid); err != nil {
					continue // a flag update without UID first
				}
				if n < 1 || int(n) > len(view) {
					t.Fatalf("FETCH %d out of range %d: %q", n, len(view), l)
				}
				if view[n-1] == 0 {
					view[n-1] = uid
				} else if view[n-1] != uid {
					t.Fatalf("seq %d is UID %d in this session's view, but FETCH says %d", n, view[n-1], uid)
				}
			}
		}
		for i := 1; i < len(view); i++ {
			if view[i] != 0 && view[i-1] != 0 && view[i] <= view[i-1] {
				t.Fatalf("view not ascending: %v", view)
			}
		}
	}

	deadline := time.Now().Add(1500 * time.Millisecond)
	checks := 0
	for time.Now().Before(deadline) {
		cmd := `FETCH 1:* (UID)`
		if checks%3 == 2 {
			cmd = `NOOP`
		}
		untagged, st := watcher.cmd(cmd)
		if !strings.HasPrefix(st, "OK") {
			t.Fatalf("%s: %q", cmd, st)
		}
		apply(cmd, untagged)
		checks++
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if checks < 3 {
		t.Errorf("only %d checks", checks)
	}
	// Once told everything, the session's view is the mailbox.
	apply("NOOP", watcher.ok(`NOOP`))
	untagged, _ := watcher.cmd(`FETCH 1:* (UID)`)
	apply("FETCH", untagged)
	msgs, err := ts.store.Messages("alice", mustMailboxID(t, ts, "alice", "INBOX"))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(view) {
		t.Fatalf("view has %d messages, mailbox %d", len(view), len(msgs))
	}
	for i, m := range msgs {
		if view[i] != m.UID {
			t.Fatalf("seq %d: view says UID %d, mailbox %d", i+1, view[i], m.UID)
		}
	}
	t.Logf("%d checks, %d messages at the end", checks, len(msgs))
}

func mustMailboxID(t *testing.T, ts *testServer, acct, name string) uint32 {
	t.Helper()
	mb, err := ts.store.Mailbox(acct, name)
	if err != nil {
		t.Fatal(err)
	}
	return mb.ID
}
