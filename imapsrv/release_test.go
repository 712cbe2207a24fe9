package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"

	"certmail/imapsrv"
	"certmail/mailbox"
)

// releaseHook stands in for certified mail: a stub copied or moved into
// Acknowledge is withdrawn and a released message appended to INBOX, in
// the session's own transaction; then extra runs, if set.
type releaseHook struct {
	ts    *testServer
	extra func(tx *mailbox.Tx, inbox uint32, released []uint32) error
	// after runs as a separate transaction of nobody's session.
	after func(tx *mailbox.Tx, inbox uint32, released []uint32) error
}

func (h *releaseHook) Handles(acct, dest string) bool { return dest == "Acknowledge" }

func (h *releaseHook) Consign(acct, password string, source any, dest string, msgs []*mailbox.Message) (*mailbox.CopyResult, error) {
	res := &mailbox.CopyResult{UIDValidity: 1}
	var inbox uint32
	var released []uint32
	err := h.ts.store.UpdateFrom(source, func(tx *mailbox.Tx) error {
		mb, err := tx.Mailbox(acct, "INBOX")
		if err != nil {
			return err
		}
		inbox = mb.ID
		for _, m := range msgs {
			if _, err := tx.Expunge(acct, mb.ID, []uint32{m.UID}); err != nil {
				return err
			}
			r, err := tx.Append(acct, "INBOX", []byte(fmt.Sprintf("Subject: released %d\r\n\r\nM\r\n", m.UID)), mailbox.AppendOptions{})
			if err != nil {
				return err
			}
			released = append(released, r.UID)
			res.SourceUIDs = append(res.SourceUIDs, m.UID)
			res.DestUIDs = append(res.DestUIDs, uint32(len(res.DestUIDs)+1))
		}
		if h.extra != nil {
			return h.extra(tx, inbox, released)
		}
		return nil
	})
	if err == nil && h.after != nil {
		err = h.ts.store.Update(func(tx *mailbox.Tx) error { return h.after(tx, inbox, released) })
	}
	return res, err
}

func (h *releaseHook) AppendTo(acct, password string, source any, dest string, raw []byte, opts mailbox.AppendOptions) (*mailbox.AppendResult, error) {
	return nil, fmt.Errorf("%w: not in this test", mailbox.ErrRefused)
}

func (h *releaseHook) CheckAppend(acct, dest string, raw []byte) error { return nil }

func newReleaseServer(t *testing.T) (*testServer, *releaseHook) {
	h := &releaseHook{}
	ts := newTestServer(t, func(o *imapsrv.Options) { o.Hooks = h })
	h.ts = ts
	ts.addUser("alice")
	return ts, h
}

// untaggedOf keeps the untagged responses that are not the COPYUID line.
func untaggedOf(lines []string) string {
	var out []string
	for _, l := range lines {
		if !strings.Contains(l, "[COPYUID") {
			out = append(out, l)
		}
	}
	return strings.Join(out, " | ")
}

// TestReleaseDeferredPastMove: the message a hooked MOVE or COPY releases
// into the selected mailbox is announced by the next command's (or
// IDLE's) updates, not inside the MOVE's response (Thunderbird ignores it
// there); the MOVE's EXPUNGEs stay in its response, with sequence numbers
// that hold for the client's view at every step.
func TestReleaseDeferredPastMove(t *testing.T) {
	t.Run("two stubs in one MOVE", func(t *testing.T) {
		ts, _ := newReleaseServer(t)
		ts.deliver("alice", "INBOX", simpleMessage("stub 1", "x"))
		ts.deliver("alice", "INBOX", simpleMessage("stub 2", "x"))
		rc := ts.rawLogin("alice")
		rc.ok("SELECT INBOX")
		if got := untaggedOf(rc.ok("MOVE 1:2 Acknowledge")); got != "* 1 EXPUNGE | * 1 EXPUNGE" {
			t.Fatalf("MOVE: %s", got)
		}
		if got := untaggedOf(rc.ok("NOOP")); got != "* 1 EXISTS | * 2 EXISTS" {
			t.Fatalf("NOOP: %s", got)
		}
		if got := untaggedOf(rc.ok("FETCH 1:* (FLAGS)")); got != "* 1 FETCH (UID 3 FLAGS ()) | * 2 FETCH (UID 4 FLAGS ())" {
			t.Fatalf("FETCH: %s", got)
		}
	})
	t.Run("a new message gone before it was announced", func(t *testing.T) {
		ts, h := newReleaseServer(t)
		h.extra = func(tx *mailbox.Tx, inbox uint32, _ []uint32) error {
			r, err := tx.Append("alice", "INBOX", []byte("Subject: fleeting\r\n\r\nx\r\n"), mailbox.AppendOptions{})
			if err != nil {
				return err
			}
			_, err = tx.Expunge("alice", inbox, []uint32{r.UID})
			return err
		}
		ts.deliver("alice", "INBOX", simpleMessage("stub", "x"))
		ts.deliver("alice", "INBOX", simpleMessage("other", "x"))
		rc := ts.rawLogin("alice")
		rc.ok("SELECT INBOX")
		if got := untaggedOf(rc.ok("UID MOVE 1 Acknowledge")); got != "* 1 EXPUNGE" {
			t.Fatalf("MOVE: %s", got)
		}
		if got := untaggedOf(rc.ok("NOOP")); got != "* 2 EXISTS" {
			t.Fatalf("NOOP: %s", got)
		}
	})
	t.Run("flags of known and new messages", func(t *testing.T) {
		ts, h := newReleaseServer(t)
		h.after = func(tx *mailbox.Tx, inbox uint32, released []uint32) error {
			// The remaining stub (UID 2) first, then the released message.
			if _, err := tx.SetFlags("alice", inbox, []uint32{2}, mailbox.FlagsAdd, []string{mailbox.FlagFlagged}); err != nil {
				return err
			}
			_, err := tx.SetFlags("alice", inbox, released, mailbox.FlagsAdd, []string{mailbox.FlagFlagged})
			return err
		}
		ts.deliver("alice", "INBOX", simpleMessage("stub", "x"))
		ts.deliver("alice", "INBOX", simpleMessage("other", "x"))
		rc := ts.rawLogin("alice")
		rc.ok("SELECT INBOX")
		if got := untaggedOf(rc.ok("COPY 1 Acknowledge")); got != `* 1 EXPUNGE | * 1 FETCH (UID 2 FLAGS (\Flagged))` {
			t.Fatalf("COPY: %s", got)
		}
		// IDLE announces the release, then its flags, at once.
		rc.write("i1 IDLE\r\n")
		if l := rc.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q", l)
		}
		for _, want := range []string{"* 2 EXISTS", `* 2 FETCH (UID 3 FLAGS (\Flagged))`} {
			if l := rc.readLine(); l != want {
				t.Fatalf("IDLE: %q, want %q", l, want)
			}
		}
		rc.write("DONE\r\n")
		if _, st := rc.readUntilTagged("i1"); !strings.HasPrefix(st, "OK") {
			t.Fatalf("DONE: %s", st)
		}
	})
	t.Run("what follows is as before", func(t *testing.T) {
		ts, _ := newReleaseServer(t)
		ts.deliver("alice", "INBOX", simpleMessage("stub", "x"))
		rc := ts.rawLogin("alice")
		rc.ok("SELECT INBOX")
		if got := untaggedOf(rc.ok("MOVE 1 Acknowledge")); got != "* 1 EXPUNGE" {
			t.Fatalf("MOVE: %s", got)
		}
		// Not yet announced: the client may not address it.
		if got := untaggedOf(rc.ok("UID FETCH 1:* (FLAGS)")); got != "* 1 EXISTS" {
			t.Fatalf("UID FETCH right after: %s", got)
		}
		ts.deliver("alice", "INBOX", simpleMessage("two", "x"))
		// A plain MOVE carries what is queued, EXISTS included, as ever.
		if got := untaggedOf(rc.ok("MOVE 1 Trash")); got != "* 2 EXISTS | * 1 EXPUNGE" {
			t.Fatalf("plain MOVE: %s", got)
		}
		if got := untaggedOf(rc.ok("FETCH 1:* (UID)")); got != "* 1 FETCH (UID 3)" {
			t.Fatalf("FETCH: %s", got)
		}
	})
}
