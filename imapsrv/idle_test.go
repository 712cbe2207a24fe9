package imapsrv_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestIdle: a session in IDLE sees, within a second and in order, a
// message appended by another session, one delivered through the store
// (as LMTP does), a flag change and an expunge.
func TestIdle(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)

	idler := ts.client("alice")
	idler.selectBox("INBOX")
	idler.drainUpdates()
	idle, err := idler.Idle()
	if err != nil {
		t.Fatal(err)
	}

	other := ts.rawLogin("alice")
	// Appended by another session.
	if _, st := other.appendRaw("INBOX", simpleMessage("appended", "x")); !strings.HasPrefix(st, "OK") {
		t.Fatal(st)
	}
	idler.expectUpdates(time.Second, "EXISTS 3")
	// Delivered through the store.
	ts.deliver("alice", "INBOX", simpleMessage("delivered", "y"))
	idler.expectUpdates(time.Second, "EXISTS 4")
	// Flags changed by another session.
	other.ok(`SELECT INBOX`)
	other.ok(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	idler.expectUpdates(time.Second, `FETCH 2 UID 2 FLAGS (\Flagged)`)
	// Expunged by another session.
	other.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	idler.expectUpdates(time.Second, `FETCH 1 UID 1 FLAGS (\Deleted)`)
	other.ok(`EXPUNGE`)
	idler.expectUpdates(time.Second, "EXPUNGE 1")
	// Several changes in one go all arrive. (imapclient hands each
	// unilateral FETCH to its own goroutine, so their order is checked in
	// TestIdleRaw instead.)
	other.ok(`STORE 1:3 +FLAGS.SILENT (\Seen)`)
	got := map[string]bool{}
	for i := 0; i < 3; i++ {
		u, ok := idler.nextUpdate(time.Second)
		if !ok {
			t.Fatalf("timed out after %v", got)
		}
		got[u] = true
	}
	for _, w := range []string{`FETCH 1 UID 2 FLAGS (\Flagged \Seen)`, `FETCH 2 UID 3 FLAGS (\Seen)`, `FETCH 3 UID 4 FLAGS (\Seen)`} {
		if !got[w] {
			t.Errorf("missing update %q in %v", w, got)
		}
	}
	other.ok(`UID MOVE 3 Trash`)
	idler.expectUpdates(time.Second, "EXPUNGE 2")

	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	// After IDLE, the session works and agrees on the numbering.
	if err := idler.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	bufs, err := idler.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(bufs) != 2 || bufs[0].UID != 2 || bufs[1].UID != 4 {
		t.Fatalf("FETCH after IDLE: %v %v", bufs, err)
	}
	// Nothing was delivered twice.
	idler.drainUpdates()
	if err := idler.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if u, ok := idler.nextUpdate(100 * time.Millisecond); ok {
		t.Errorf("unexpected update after IDLE: %q", u)
	}
}

// TestIdleRaw drives IDLE by hand, as imaplib users and Thunderbird do:
// IDLE, "+ idling", updates, DONE, tagged OK, then NOOP.
func TestIdleRaw(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)

	rc.write("i1 idle\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	start := time.Now()
	ts.deliver("alice", "INBOX", simpleMessage("during idle", "z"))
	if l := rc.readLine(); l != "* 1 EXISTS" {
		t.Fatalf("during IDLE: %q", l)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("new mail took %v to reach the IDLE session", d)
	}
	// Flag changes, an expunge and new mail, made by another session
	// while this one idles, arrive in the order they were made.
	other := ts.rawLogin("alice")
	other.ok(`SELECT INBOX`)
	ts.deliverN("alice", "INBOX", 2)
	other.ok(`NOOP`)
	other.ok(`STORE 3,1 +FLAGS.SILENT (\Flagged)`)
	other.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	other.ok(`EXPUNGE`)
	other.ok(`UID STORE 3 -FLAGS.SILENT (\Flagged)`)
	want := []string{"* 2 EXISTS", "* 3 EXISTS", `* 1 FETCH (UID 1 FLAGS (\Flagged))`, `* 3 FETCH (UID 3 FLAGS (\Flagged))`,
		`* 2 FETCH (UID 2 FLAGS (\Deleted))`, "* 2 EXPUNGE", `* 2 FETCH (UID 3 FLAGS ())`}
	first := rc.readLine()
	if first == "* 3 EXISTS" {
		// Two deliveries may be announced as one EXISTS.
		want = want[1:]
	}
	lines := []string{first}
	for len(lines) < len(want) {
		lines = append(lines, rc.readLine())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Fatalf("IDLE updates: got %q, want %q", lines, want)
		}
	}
	// "done" in lower case (go-imap alone accepts only "DONE"; the
	// literalGuard spells it so).
	rc.write("done\r\n")
	if _, st := rc.readUntilTagged("i1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("IDLE completion: %q", st)
	}
	rc.ok(`NOOP`)
	mustContain(t, rc.ok(`FETCH 1 (UID)`), "* 1 FETCH (UID 1)")
	mustContain(t, rc.ok(`FETCH 2 (UID)`), "* 2 FETCH (UID 3)")

	// IDLE again, with nothing happening, then DONE.
	rc.write("i2 IDLE\r\n")
	rc.readLine()
	rc.write("Done\r\n")
	if _, st := rc.readUntilTagged("i2"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("second IDLE: %q", st)
	}

	// IDLE without a selected mailbox is allowed.
	rc.ok(`UNSELECT`)
	rc.write("i3 IDLE\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE unselected: %q", l)
	}
	ts.deliver("alice", "INBOX", simpleMessage("unseen by this session", "z"))
	rc.write("DONE\r\n")
	untagged, st := rc.readUntilTagged("i3")
	if !strings.HasPrefix(st, "OK") || len(untagged) != 0 {
		t.Fatalf("IDLE unselected: %q %q", untagged, st)
	}

	// Something other than DONE ends IDLE with BAD; the session survives.
	rc.ok(`SELECT INBOX`)
	rc.write("i4 IDLE\r\n")
	rc.readLine()
	rc.write("NOOP\r\n")
	if _, st := rc.readUntilTagged("i4"); !strings.HasPrefix(st, "BAD") && !strings.HasPrefix(st, "OK") {
		t.Errorf("IDLE ended by garbage: %q", st)
	}
	rc.alive()
}
