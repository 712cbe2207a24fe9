package mailbox

import (
	"maps"
	"slices"
	"testing"

	"certmail/kv"
	"certmail/kv/badgerkv"
)

// sharedEngine is an engine two stores can open: its Close does nothing,
// the test closes the real one.
type sharedEngine struct{ kv.Engine }

func (sharedEngine) Close() error { return nil }

// TestLogFollowerOnSharedEngine: a store that did not make the changes
// and has no change feed of them (another node on PostgreSQL, here a
// second store on the same engine; on PostgreSQL two engines on one
// database) follows a mailbox by reading the durable change log, as the
// in-process feed that drives IDLE announces it: from a snapshot's
// HIGHESTMODSEQ, ReadLog(since) again and again, each entry applied to its
// copy; when its MODSEQ falls below the log's VanishedFloor (expunges
// forgotten) it starts again from a snapshot, ReadLog(0). Its copy equals the
// writer's after every step, and what it read is what the writer's feed
// announced, compacted to each message's last change.
func TestLogFollowerOnSharedEngine(t *testing.T) {
	var writerEngine, followerEngine kv.Engine
	if engines.Postgres() {
		dsn := engines.DSN(t)
		writerEngine, followerEngine = engines.Reopen(t, dsn), engines.Reopen(t, dsn)
	} else {
		db, err := badgerkv.Open(badgerkv.Options{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		writerEngine, followerEngine = db, sharedEngine{db}
	}
	writer := openAt(t, Options{Engine: writerEngine, GCInterval: -1, VanishedRetention: 8})
	follower := openAt(t, Options{Engine: followerEngine, GCInterval: -1})
	defer writer.Close()
	defer follower.Close()
	inbox := newAccount(t, writer, "f")
	appendN(t, writer, "f", "INBOX", 10)

	// The follower's copy: UID -> record; since: the MODSEQ it is exact at.
	var copyOf map[uint32]Message
	var since uint64
	// A snapshot is the log read from 0: every message present, at its
	// last change (the follower's in-memory index would not do: nothing
	// keeps it current when another store writes).
	snapshot := func() {
		log, info, err := follower.ReadLog("f", inbox.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		copyOf = make(map[uint32]Message)
		for _, e := range log {
			if !e.Expunged {
				copyOf[e.UID] = *e.Message
			}
		}
		since = info.HighestModSeq
	}
	snapshot()
	var fromFeed []LogEntry // what the writer's feed announced since the follower's last read
	writer.OnChange(func(c Change) {
		if c.MailboxID == inbox.ID && c.Message != nil {
			fromFeed = append(fromFeed, LogEntry{ModSeq: c.ModSeq, UID: c.Message.UID, Expunged: c.Kind == MessageExpunged})
		}
	})
	reloads := 0
	follow := func(step string) {
		t.Helper()
		log, info, err := follower.ReadLog("f", inbox.ID, since, 0)
		if err != nil {
			t.Fatal(err)
		}
		if since < info.VanishedFloor {
			snapshot() // expunges after since may be forgotten
			reloads++
		} else {
			// The feed, compacted to each message's last change, in MODSEQ order.
			last := map[uint32]LogEntry{}
			for _, e := range fromFeed {
				last[e.UID] = e
			}
			if got, want := len(log), len(last); got != want {
				t.Fatalf("%s: the follower read %d entries, the feed announced %d messages", step, got, want)
			}
			for _, e := range log {
				if f := last[e.UID]; f.ModSeq != e.ModSeq || f.Expunged != e.Expunged {
					t.Fatalf("%s: log entry %+v, feed %+v", step, e, f)
				}
				if e.Expunged {
					delete(copyOf, e.UID)
				} else {
					copyOf[e.UID] = *e.Message
				}
			}
			since = info.HighestModSeq
		}
		fromFeed = nil
		msgs, err := writer.Messages("f", inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := make(map[uint32]Message)
		for _, m := range msgs {
			want[m.UID] = *m
		}
		if !maps.EqualFunc(copyOf, want, func(a, b Message) bool {
			return a.ModSeq == b.ModSeq && a.UID == b.UID && slices.Equal(a.Flags, b.Flags)
		}) {
			t.Fatalf("%s: the follower has %v, the writer %v", step, copyOf, want)
		}
	}
	uids := func() []uint32 {
		msgs, _ := writer.Messages("f", inbox.ID)
		var out []uint32
		for _, m := range msgs {
			out = append(out, m.UID)
		}
		return out
	}
	setFlags := func(u []uint32, op FlagOp, flag string) {
		if err := writer.Update(func(tx *Tx) error {
			_, err := tx.SetFlags("f", inbox.ID, u, op, []string{flag})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	expunge := func(u []uint32) {
		if err := writer.Update(func(tx *Tx) error {
			_, err := tx.Expunge("f", inbox.ID, u)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	u := uids()
	setFlags(u[:3], FlagsAdd, FlagSeen)
	follow("flags")
	appendN(t, writer, "f", "INBOX", 2)
	setFlags(u[1:2], FlagsRemove, FlagSeen)
	expunge(u[4:6])
	follow("append, flags, expunge")
	follow("nothing")
	// More expunges than the writer keeps (8, pruned past 9): the
	// follower, behind, starts again from a snapshot.
	for i := 0; i < 4; i++ {
		appendN(t, writer, "f", "INBOX", 3)
		u = uids()
		expunge(u[len(u)-3:])
	}
	follow("expunges beyond retention")
	if reloads != 1 {
		t.Fatalf("%d reloads, want 1 (the follower fell behind the retained expunges once)", reloads)
	}
	setFlags(uids()[:1], FlagsAdd, "$Later")
	follow("after the reload")
}
