package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"certmail/kv"
	"certmail/kv/pgkv"
)

// openFollowNodes opens n stores on one PostgreSQL database, each on an engine
// (a connection pool) of its own: n certmail nodes.
func openFollowNodes(t *testing.T, n int, po pgkv.Options, opts Options) []*Store {
	t.Helper()
	dsn := engines.PostgresDSN(t)
	var out []*Store
	for range n {
		e, err := pgkv.Open(context.Background(), dsn, po)
		if err != nil {
			t.Fatal(err)
		}
		o := opts
		o.Engine = e
		o.GCInterval = -1
		s, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

// feedLog records a store's change feed.
type feedLog struct {
	mu      sync.Mutex
	changes []Change
	signal  chan struct{}
}

func recordFeed(s *Store) *feedLog {
	f := &feedLog{signal: make(chan struct{}, 1)}
	s.OnChange(func(c Change) {
		f.mu.Lock()
		f.changes = append(f.changes, c)
		f.mu.Unlock()
		select {
		case f.signal <- struct{}{}:
		default:
		}
	})
	return f
}

// waitFor waits up to within for a change matching ok, and returns it
// with how long it took.
func (f *feedLog) waitFor(t *testing.T, within time.Duration, what string, ok func(Change) bool) (Change, time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := time.After(within)
	for {
		f.mu.Lock()
		for _, c := range f.changes {
			if ok(c) {
				f.mu.Unlock()
				return c, time.Since(start)
			}
		}
		f.mu.Unlock()
		select {
		case <-f.signal:
		case <-deadline:
			t.Fatalf("no %s on the feed within %v; feed: %+v", what, within, f.snapshot())
		}
	}
}

func (f *feedLog) snapshot() []Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes)
}

// sameIndex checks that two nodes' indexes of a mailbox hold the same
// records and totals.
func sameIndex(t *testing.T, a, b *Store, acct, box string) {
	t.Helper()
	_, sa, err := a.Status(acct, box)
	if err != nil {
		t.Fatal(err)
	}
	_, sb, err := b.Status(acct, box)
	if err != nil {
		t.Fatal(err)
	}
	if sa != sb {
		t.Fatalf("status differs:\n%+v\n%+v", sa, sb)
	}
	mb, err := a.Mailbox(acct, box)
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := a.Messages(acct, mb.ID)
	mbs, _ := b.Messages(acct, mb.ID)
	if len(ma) != len(mbs) {
		t.Fatalf("%d messages here, %d there", len(ma), len(mbs))
	}
	for i := range ma {
		if ma[i].UID != mbs[i].UID || ma[i].ModSeq != mbs[i].ModSeq || !slices.Equal(ma[i].Flags, mbs[i].Flags) {
			t.Fatalf("message %d: %+v here, %+v there", i+1, *ma[i], *mbs[i])
		}
	}
}

func appendOne(t testing.TB, s *Store, acct, box string, source any) uint32 {
	t.Helper()
	var uid uint32
	if err := s.UpdateFrom(source, func(tx *Tx) error {
		res, err := tx.Append(acct, box, []byte("Subject: x\r\n\r\nbody\r\n"), AppendOptions{})
		if err == nil {
			uid = res.UID
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return uid
}

// TestFollowAcrossNodes: three stores on one database (three nodes),
// each woken by the others' commits: a message appended on A is in B's
// index and on B's change feed within a second; flags set on B reach C;
// an expunge on A reaches B; totals (STATUS) agree everywhere; mailbox
// creation, rename and deletion and an account's deletion reach the
// others' feeds; a password changed on A is in force on B at once.
func TestFollowAcrossNodes(t *testing.T) {
	nodes := openFollowNodes(t, 3, pgkv.Options{}, Options{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	inbox := newAccount(t, a, "f")
	feedA, feedB, feedC := recordFeed(a), recordFeed(b), recordFeed(c)
	// B and C hold INBOX's index (a session has it selected).
	for _, s := range []*Store{b, c} {
		if _, err := s.Messages("f", inbox.ID); err != nil {
			t.Fatal(err)
		}
	}

	uid := appendOne(t, a, "f", "INBOX", "A")
	ch, took := feedB.waitFor(t, time.Second, "the append", func(c Change) bool {
		return c.Kind == MessageAdded && c.Message.UID == uid
	})
	t.Logf("append on A announced on B after %v", took)
	if ch.Seq != 1 || ch.Count != 1 || ch.Source != nil || ch.MailboxID != inbox.ID {
		t.Fatalf("B announced %+v", ch)
	}
	sameIndex(t, a, b, "f", "INBOX")

	if err := b.Update(func(tx *Tx) error {
		_, err := tx.SetFlags("f", inbox.ID, []uint32{uid}, FlagsAdd, []string{FlagSeen, "$Important"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ch, took = feedC.waitFor(t, time.Second, "the flags", func(c Change) bool {
		return c.Kind == MessageFlags && c.Message.UID == uid
	})
	t.Logf("flags on B announced on C after %v", took)
	if !slices.Equal(ch.Message.Flags, []string{FlagSeen, "$Important"}) || ch.Seq != 1 {
		t.Fatalf("C announced %+v", ch)
	}
	sameIndex(t, b, c, "f", "INBOX")
	feedA.waitFor(t, time.Second, "the flags", func(c Change) bool {
		return c.Kind == MessageFlags && c.Message.UID == uid
	})

	// A appends two more and expunges the first: B applies the lot.
	appendOne(t, a, "f", "INBOX", nil)
	appendOne(t, a, "f", "INBOX", nil)
	if err := a.Update(func(tx *Tx) error {
		_, err := tx.Expunge("f", inbox.ID, []uint32{uid})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ch, took = feedB.waitFor(t, time.Second, "the expunge", func(c Change) bool {
		return c.Kind == MessageExpunged && c.Message.UID == uid
	})
	t.Logf("expunge on A announced on B after %v", took)
	if ch.Seq != 1 {
		t.Fatalf("B announced %+v", ch)
	}
	feedC.waitFor(t, time.Second, "the expunge", func(c Change) bool {
		return c.Kind == MessageExpunged && c.Message.UID == uid
	})
	for _, s := range []*Store{b, c} {
		sameIndex(t, a, s, "f", "INBOX")
	}
	// Each of B's announcements once, in MODSEQ order.
	var modseqs []uint64
	for _, c := range feedB.snapshot() {
		if c.MailboxID == inbox.ID && c.Message != nil && c.Source == nil {
			modseqs = append(modseqs, c.ModSeq)
		}
	}
	if !slices.IsSorted(modseqs) {
		t.Fatalf("B announced MODSEQs out of order: %v", modseqs)
	}

	// The mailbox list.
	if err := a.Update(func(tx *Tx) error {
		_, err := tx.CreateMailbox("f", NewMailbox{Name: "Projects"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	created, _ := feedB.waitFor(t, time.Second, "the new mailbox", func(c Change) bool {
		return c.Kind == MailboxCreated && c.Mailbox == "Projects"
	})
	if err := a.Update(func(tx *Tx) error { return tx.RenameMailbox("f", "Projects", "Work") }); err != nil {
		t.Fatal(err)
	}
	feedB.waitFor(t, time.Second, "the rename", func(c Change) bool {
		return c.Kind == MailboxRenamed && c.OldName == "Projects" && c.Mailbox == "Work" && c.MailboxID == created.MailboxID
	})
	// B holds Work's index; A deletes it: B drops the index.
	if _, err := b.Messages("f", created.MailboxID); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteMailbox("f", "Work"); err != nil {
		t.Fatal(err)
	}
	feedB.waitFor(t, time.Second, "the deletion", func(c Change) bool {
		return c.Kind == MailboxDeleted && c.MailboxID == created.MailboxID
	})
	if _, err := b.Messages("f", created.MailboxID); !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("B still has the deleted mailbox: %v", err)
	}

	// Password: B logs in, A changes it, B refuses the old one at once.
	if _, err := b.Authenticate("f", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPassword("f", "new secret", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate("f", "pw"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("B took the old password after A changed it: %v", err)
	}
	if _, err := b.Authenticate("f", "new secret"); err != nil {
		t.Fatalf("B refused the new password: %v", err)
	}

	// The account goes on C: A and B hear of it.
	if err := c.DeleteAccount("f"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*feedLog{feedA, feedB} {
		f.waitFor(t, time.Second, "the account's deletion", func(c Change) bool {
			return c.Kind == AccountDeleted && c.Account == "f"
		})
	}
	if _, err := b.Authenticate("f", "new secret"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("B logs in a deleted account: %v", err)
	}
}

// TestFollowPollingOnly: with no notifications (a database without
// LISTEN/NOTIFY: CockroachDB, YugabyteDB) the nodes converge by polling
// alone, within the interval.
func TestFollowPollingOnly(t *testing.T) {
	nodes := openFollowNodes(t, 2, pgkv.Options{NoNotify: true}, Options{FollowInterval: 200 * time.Millisecond})
	a, b := nodes[0], nodes[1]
	inbox := newAccount(t, a, "p")
	feedB := recordFeed(b)
	if _, err := b.Messages("p", inbox.ID); err != nil {
		t.Fatal(err)
	}
	uid := appendOne(t, a, "p", "INBOX", nil)
	_, took := feedB.waitFor(t, time.Second, "the append", func(c Change) bool {
		return c.Kind == MessageAdded && c.Message.UID == uid
	})
	t.Logf("append on A announced on B after %v (polling every 200ms)", took)
	if err := b.Update(func(tx *Tx) error {
		_, err := tx.SetFlags("p", inbox.ID, []uint32{uid}, FlagsAdd, []string{FlagDeleted})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	feedA := recordFeed(a)
	if err := b.Update(func(tx *Tx) error {
		_, err := tx.Expunge("p", inbox.ID, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// A never loaded INBOX's index: it still announces the expunge.
	feedA.waitFor(t, time.Second, "the expunge", func(c Change) bool {
		return c.Kind == MessageExpunged && c.Message.UID == uid
	})
	sameIndex(t, a, b, "p", "INBOX")
}

// TestFollowCatchUpBeforeLocalCommit: a node that commits to a mailbox
// before it has heard of another node's commit there announces the other
// commit first (a session must see message 1 before message 2), and its
// own with its source.
func TestFollowCatchUpBeforeLocalCommit(t *testing.T) {
	// B hears nothing by itself: no notifications, a poll an hour.
	dsn := engines.PostgresDSN(t)
	open := func(po pgkv.Options, interval time.Duration) *Store {
		e, err := pgkv.Open(context.Background(), dsn, po)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Engine: e, GCInterval: -1, FollowInterval: interval})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a := open(pgkv.Options{}, 0)
	b := open(pgkv.Options{NoNotify: true}, time.Hour)
	inbox := newAccount(t, a, "c")
	if _, err := b.Messages("c", inbox.ID); err != nil {
		t.Fatal(err)
	}
	feedB := recordFeed(b)
	u1 := appendOne(t, a, "c", "INBOX", nil)
	u2 := appendOne(t, b, "c", "INBOX", "mine")
	got := feedB.snapshot()
	if len(got) != 2 || got[0].Message.UID != u1 || got[0].Seq != 1 || got[0].Source != nil ||
		got[1].Message.UID != u2 || got[1].Seq != 2 || got[1].Source != "mine" || got[0].ModSeq >= got[1].ModSeq {
		t.Fatalf("B announced %+v", got)
	}
	// A hears of B's commit when it polls (B sends no wake-ups here).
	if err := a.follow.pollLocked(followLookback); err != nil {
		t.Fatal(err)
	}
	sameIndex(t, a, b, "c", "INBOX")
	// B's own poll later finds nothing new to announce.
	if err := b.follow.pollLocked(followLookback); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range feedB.snapshot() {
		if c.Message != nil {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("B announced %d message changes, want 2: %+v", n, feedB.snapshot())
	}
}

// TestFollowLostBulletin: a bulletin a node never reads (here deleted
// before it polls; in life, one that committed after the node had read
// past its time) leaves a gap in the mailbox's MODSEQ chain, and the node
// reads the mailbox's log instead: nothing is missed.
func TestFollowLostBulletin(t *testing.T) {
	nodes := openFollowNodes(t, 2, pgkv.Options{NoNotify: true}, Options{FollowInterval: time.Hour})
	a, b := nodes[0], nodes[1]
	inbox := newAccount(t, a, "l")
	if _, err := b.Messages("l", inbox.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.follow.pollLocked(followLookback); err != nil {
		t.Fatal(err)
	}
	feedB := recordFeed(b)
	u1 := appendOne(t, a, "l", "INBOX", nil)
	// The first bulletin of the append is lost.
	if err := kv.Update(a.db, func(tx kv.Txn) error {
		var first []byte
		err := tx.Scan(kv.Range{Prefix: []byte(prefixFeed), Reverse: true, Limit: 1}, func(k, _ []byte) error {
			first = bytes.Clone(k)
			return nil
		})
		if err != nil || first == nil {
			return fmt.Errorf("no bulletin: %v", err)
		}
		return tx.Delete(first)
	}); err != nil {
		t.Fatal(err)
	}
	u2 := appendOne(t, a, "l", "INBOX", nil)
	if err := b.follow.pollLocked(followLookback); err != nil {
		t.Fatal(err)
	}
	got := feedB.snapshot()
	if len(got) != 2 || got[0].Message.UID != u1 || got[1].Message.UID != u2 || got[0].Kind != MessageAdded || got[1].Kind != MessageAdded {
		t.Fatalf("B announced %+v", got)
	}
	sameIndex(t, a, b, "l", "INBOX")
}

// TestFollowBulletinRoundTrip: what a transaction notes decodes as it was.
func TestFollowBulletinRoundTrip(t *testing.T) {
	s := &Store{follow: &follower{}}
	tx := &Tx{s: s}
	tx.noteAdded("a", 1, 7)
	tx.noteChanged("a", 1, 3)
	tx.noteExpunged("b", 2, 9)
	tx.noteEvent(Change{Kind: MailboxRenamed, Account: "a", MailboxID: 4, Mailbox: "New", OldName: "Old"})
	st := tx.modseqs.add(mboxRef{"a", 1}, modseqState{})
	st.txModSeq = 42
	b, err := decodeBulletin(tx.encodeBulletin())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.boxes) != 2 || b.boxes[0].modseq != 42 || !slices.Equal(b.boxes[0].added, []uint32{7}) ||
		!slices.Equal(b.boxes[0].changed, []uint32{3}) || !slices.Equal(b.boxes[1].expunged, []uint32{9}) ||
		len(b.events) != 1 || b.events[0] != (Change{Kind: MailboxRenamed, Account: "a", MailboxID: 4, Mailbox: "New", OldName: "Old"}) {
		t.Fatalf("decoded %+v", b)
	}
	enc := tx.encodeBulletin()
	if enc[0] != bulletinV1 {
		t.Errorf("a bulletin without METADATA changes is version %d, want 1 (what nodes of the version before read)", enc[0])
	}
	for i := range enc {
		if _, err := decodeBulletin(enc[:i]); err == nil {
			t.Fatalf("a bulletin cut at %d decoded", i)
		}
	}

	// A METADATA change carries its entry (version 2).
	meta := Change{Kind: MetadataChanged, Account: "a", MailboxID: 4, Mailbox: "New", Entry: "/private/comment"}
	tx.noteEvent(meta)
	enc = tx.encodeBulletin()
	if enc[0] != bulletinV2 {
		t.Errorf("a bulletin with a METADATA change is version %d, want 2", enc[0])
	}
	b, err = decodeBulletin(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.boxes) != 2 || len(b.events) != 2 || b.events[0].OldName != "Old" || b.events[1] != meta {
		t.Fatalf("decoded %+v", b)
	}
	for i := range enc {
		if _, err := decodeBulletin(enc[:i]); err == nil {
			t.Fatalf("a version 2 bulletin cut at %d decoded", i)
		}
	}
}

// FuzzDecodeBulletin: the journal's bulletins come from other processes
// (and versions); no input makes the decoder panic, and the events of one
// that decodes encode back to the same events.
func FuzzDecodeBulletin(f *testing.F) {
	tx := &Tx{s: &Store{follow: &follower{}}}
	f.Add([]byte{bulletinV1, 0, 0})
	tx.noteAdded("a", 1, 7)
	tx.noteChanged("a", 1, 3)
	tx.noteEvent(Change{Kind: MailboxRenamed, Account: "a", MailboxID: 4, Mailbox: "New", OldName: "Old"})
	f.Add(tx.encodeBulletin())
	tx.noteEvent(Change{Kind: MetadataChanged, Account: "a", MailboxID: 4, Mailbox: "New", Entry: "/private/comment"})
	f.Add(tx.encodeBulletin())
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBulletin(data)
		if err != nil || len(b.events) == 0 {
			return
		}
		tx := &Tx{s: &Store{follow: &follower{}}}
		for _, c := range b.events {
			tx.noteEvent(c)
		}
		again, err := decodeBulletin(tx.encodeBulletin())
		if err != nil {
			t.Fatalf("re-encoded events do not decode: %v", err)
		}
		if !slices.Equal(again.events, b.events) {
			t.Fatalf("round trip changed the events:\n%+v\n%+v", b.events, again.events)
		}
	})
}

// TestFollowReloadAnnounces: a node that loads a mailbox's index again
// (after eviction) announces what other nodes changed there since it last
// read the journal, before the index holds it, once: a session that had
// the mailbox selected all along (its own copy, imapsrv's tracker) would
// otherwise never hear of it.
func TestFollowReloadAnnounces(t *testing.T) {
	nodes := openFollowNodes(t, 2, pgkv.Options{NoNotify: true}, Options{FollowInterval: time.Hour})
	a, b := nodes[0], nodes[1]
	inbox := newAccount(t, a, "r")
	if _, err := b.Messages("r", inbox.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.follow.pollLocked(followLookback); err != nil {
		t.Fatal(err)
	}
	feedB := recordFeed(b)
	if n := b.evictIdleIndexes(0); n == 0 {
		t.Fatal("nothing evicted")
	}
	uid := appendOne(t, a, "r", "INBOX", nil)
	msgs, err := b.Messages("r", inbox.ID)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("B loaded %d messages: %v", len(msgs), err)
	}
	if err := b.follow.pollLocked(followLookback); err != nil {
		t.Fatal(err)
	}
	var added []Change
	for _, c := range feedB.snapshot() {
		if c.Kind == MessageAdded {
			added = append(added, c)
		}
	}
	if len(added) != 1 || added[0].Message.UID != uid {
		t.Fatalf("B announced %+v, want the append once", added)
	}
}

// TestFollowPublishOnly: a store that follows no one (a CLI command:
// FollowInterval negative) still publishes its changes: a message it
// delivers reaches a node's feed within a second.
func TestFollowPublishOnly(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	open := func(interval time.Duration) *Store {
		e, err := pgkv.Open(context.Background(), dsn, pgkv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Engine: e, GCInterval: -1, FollowInterval: interval})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	node, cli := open(0), open(-1)
	inbox := newAccount(t, cli, "cli")
	if _, err := node.Messages("cli", inbox.ID); err != nil {
		t.Fatal(err)
	}
	feed := recordFeed(node)
	uid := appendOne(t, cli, "cli", "INBOX", nil)
	feed.waitFor(t, time.Second, "the delivery", func(c Change) bool {
		return c.Kind == MessageAdded && c.Message.UID == uid
	})
	sameIndex(t, cli, node, "cli", "INBOX")
}

// sessionView follows a mailbox as an IMAP session does: a snapshot from
// Watch, then every change on the feed, applied in order.
type sessionView struct {
	mu     sync.Mutex
	msgs   []*Message
	maxUID uint32
	errs   []string
}

func watchView(t *testing.T, s *Store, acct string, id uint32) *sessionView {
	v := &sessionView{}
	err := s.Watch(acct, id, "", func(_ *MailboxInfo, msgs []*Message, _ BoxFacts) {
		v.msgs = slices.Clone(msgs)
		for _, m := range msgs {
			v.maxUID = max(v.maxUID, m.UID)
		}
		// Registered while no commit can announce anything: the feed
		// goes on exactly from the snapshot.
		s.OnChange(func(c Change) {
			if c.Account != acct || c.MailboxID != id || c.Message == nil {
				return
			}
			v.mu.Lock()
			defer v.mu.Unlock()
			i, found := slices.BinarySearchFunc(v.msgs, c.Message.UID, func(m *Message, uid uint32) int { return cmpUint64(uint64(m.UID), uint64(uid)) })
			switch c.Kind {
			case MessageAdded:
				if found {
					v.errs = append(v.errs, fmt.Sprintf("UID %d announced twice", c.Message.UID))
					v.msgs[i] = c.Message
					return
				}
				if c.Message.UID <= v.maxUID {
					v.errs = append(v.errs, fmt.Sprintf("UID %d announced after UID %d", c.Message.UID, v.maxUID))
				}
				v.maxUID = max(v.maxUID, c.Message.UID)
				v.msgs = slices.Insert(v.msgs, i, c.Message)
			case MessageFlags:
				if !found {
					v.errs = append(v.errs, fmt.Sprintf("flags of UID %d, which the session does not have", c.Message.UID))
					return
				}
				v.msgs[i] = c.Message
			case MessageExpunged:
				if !found {
					v.errs = append(v.errs, fmt.Sprintf("expunge of UID %d, which the session does not have", c.Message.UID))
					return
				}
				v.msgs = slices.Delete(v.msgs, i, i+1)
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFollowConcurrentWriters: three nodes append, flag and expunge in
// one mailbox at once. Every node's sessions (a view following its feed
// from a snapshot) end with exactly the mailbox the database holds, having
// heard each new message once, in UID order, and no change to a message
// they did not have.
func TestFollowConcurrentWriters(t *testing.T) {
	nodes := openFollowNodes(t, 3, pgkv.Options{}, Options{})
	inbox := newAccount(t, nodes[0], "w")
	appendN(t, nodes[0], "w", "INBOX", 5)
	var views []*sessionView
	for _, s := range nodes {
		views = append(views, watchView(t, s, "w", inbox.ID))
	}
	var wg sync.WaitGroup
	for i, s := range nodes {
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range 8 {
					if err := s.Update(func(tx *Tx) error {
						_, err := tx.Append("w", "INBOX", fmt.Appendf(nil, "Subject: %d %d %d\r\n\r\nx\r\n", i, w, r), AppendOptions{})
						return err
					}); err != nil {
						t.Error(err)
						return
					}
					uid := uint32(1 + (i*7+w*3+r)%5)
					if err := s.Update(func(tx *Tx) error {
						_, err := tx.SetFlags("w", inbox.ID, []uint32{uid, uid + 5}, FlagsAdd, []string{fmt.Sprintf("k%d", r%3)})
						return err
					}); err != nil {
						t.Error(err)
						return
					}
					if r%3 == 2 {
						if err := s.Update(func(tx *Tx) error {
							_, err := tx.Expunge("w", inbox.ID, []uint32{uid + 5 + uint32(i)})
							return err
						}); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	// The truth: the records in the database.
	var truth []*Message
	if err := nodes[0].View(func(tx *Tx) error {
		return tx.scan(messagePrefix("w", inbox.ID), false, func(_, v []byte) error {
			var m Message
			if err := decodeMessage(v, &m); err != nil {
				return err
			}
			truth = append(truth, &m)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	same := func(got []*Message) bool {
		if len(got) != len(truth) {
			return false
		}
		for i := range got {
			if got[i].UID != truth[i].UID || got[i].ModSeq != truth[i].ModSeq || !slices.Equal(got[i].Flags, truth[i].Flags) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(2 * time.Second)
	for i, v := range views {
		for {
			v.mu.Lock()
			ok := same(v.msgs)
			errs := slices.Clone(v.errs)
			n := len(v.msgs)
			v.mu.Unlock()
			if len(errs) > 0 {
				t.Fatalf("node %d's session: %v", i, errs)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d's session has %d messages, unlike the database's %d (or their flags differ)", i, n, len(truth))
			}
			time.Sleep(20 * time.Millisecond)
		}
		msgs, err := nodes[i].Messages("w", inbox.ID)
		if err != nil || !same(msgs) {
			t.Fatalf("node %d's index differs from the database (%v)", i, err)
		}
	}
	t.Logf("%d messages in the end, every node's session and index agree", len(truth))
}

// TestFollowSubscription: a SUBSCRIBE on one node reaches the change feed
// of another (IMAP NOTIFY's SubscriptionChange there), as an UNSUBSCRIBE
// of a name whose mailbox is gone does.
func TestFollowSubscription(t *testing.T) {
	nodes := openFollowNodes(t, 2, pgkv.Options{}, Options{})
	a, b := nodes[0], nodes[1]
	newAccount(t, a, "f")
	feedB := recordFeed(b)
	if err := a.Update(func(tx *Tx) error {
		if _, err := tx.CreateMailbox("f", NewMailbox{Name: "News"}); err != nil {
			return err
		}
		return tx.SetSubscribed("f", "News", true)
	}); err != nil {
		t.Fatal(err)
	}
	feedB.waitFor(t, 2*time.Second, "the subscription", func(c Change) bool {
		return c.Kind == MailboxSubscribed && c.Account == "f" && c.Mailbox == "News" && c.MailboxID != 0
	})
	if err := a.DeleteMailbox("f", "News"); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(func(tx *Tx) error { return tx.SetSubscribed("f", "News", false) }); err != nil {
		t.Fatal(err)
	}
	feedB.waitFor(t, 2*time.Second, "the unsubscription", func(c Change) bool {
		return c.Kind == MailboxUnsubscribed && c.Mailbox == "News" && c.MailboxID == 0
	})
}
