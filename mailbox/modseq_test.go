package mailbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"

	"certmail/kv/pgkv"
)

func appendN(t testing.TB, s *Store, acct, box string, n int) []uint32 {
	t.Helper()
	var uids []uint32
	for i := 0; i < n; i++ {
		var uid uint32
		if err := s.Update(func(tx *Tx) error {
			res, err := tx.Append(acct, box, []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)), AppendOptions{})
			if err == nil {
				uid = res.UID
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		uids = append(uids, uid)
	}
	return uids
}

// logKeys drops the records from log entries, to compare them.
func logKeys(log []LogEntry) []LogEntry {
	out := make([]LogEntry, len(log))
	for i, e := range log {
		out[i] = LogEntry{ModSeq: e.ModSeq, UID: e.UID, Expunged: e.Expunged}
	}
	return out
}

func highest(t testing.TB, s *Store, acct string, id uint32) ModSeqInfo {
	t.Helper()
	var info ModSeqInfo
	if err := s.View(func(tx *Tx) error {
		var err error
		info, err = tx.ModSeq(acct, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return info
}

// checkLog checks the change log against the messages: one chg/ entry per
// message, at its MODSEQ, none above HIGHESTMODSEQ.
func checkLog(t testing.TB, s *Store, acct string, id uint32) {
	t.Helper()
	msgs, err := s.Messages(acct, id)
	if err != nil {
		t.Fatal(err)
	}
	log, info, err := s.ReadLog(acct, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	present := make(map[uint32]uint64)
	for _, e := range log {
		if e.ModSeq > info.HighestModSeq {
			t.Fatalf("log entry %+v above HIGHESTMODSEQ %d", e, info.HighestModSeq)
		}
		if !e.Expunged {
			if _, dup := present[e.UID]; dup {
				t.Fatalf("UID %d twice in the log", e.UID)
			}
			present[e.UID] = e.ModSeq
		}
	}
	for _, m := range msgs {
		if m.ModSeq > info.HighestModSeq {
			t.Fatalf("message %d has MODSEQ %d above HIGHESTMODSEQ %d", m.UID, m.ModSeq, info.HighestModSeq)
		}
		if present[m.UID] != m.ModSeq {
			t.Fatalf("message %d: MODSEQ %d, log says %d", m.UID, m.ModSeq, present[m.UID])
		}
		delete(present, m.UID)
	}
	if len(present) != 0 {
		t.Fatalf("log lists messages not in the mailbox: %v", present)
	}
}

// TestModSeqEveryChange: append, flag change, copy, move and expunge each
// take the mailbox's next MODSEQ; the message records, the change feed and
// the change log agree on it.
func TestModSeqEveryChange(t *testing.T) {
	s := openTestStore(t)
	inbox := newAccount(t, s, "ms")
	arch, _ := s.Mailbox("ms", "Archive")
	var feed []Change
	var mu sync.Mutex
	s.OnChange(func(c Change) {
		mu.Lock()
		feed = append(feed, c)
		mu.Unlock()
	})
	start := highest(t, s, "ms", inbox.ID).HighestModSeq
	if start < 1 {
		t.Fatalf("new mailbox HIGHESTMODSEQ %d", start)
	}
	uids := appendN(t, s, "ms", "INBOX", 4)
	h := highest(t, s, "ms", inbox.ID).HighestModSeq
	if h != start+4 {
		t.Fatalf("after 4 appends HIGHESTMODSEQ %d, want %d", h, start+4)
	}
	// One STORE over two messages: one MODSEQ for both.
	var changed []*Message
	if err := s.Update(func(tx *Tx) error {
		var err error
		changed, err = tx.SetFlags("ms", inbox.ID, uids[:2], FlagsAdd, []string{FlagFlagged})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(changed) != 2 || changed[0].ModSeq != h+1 || changed[1].ModSeq != h+1 {
		t.Fatalf("flag change MODSEQs: %+v", changed)
	}
	// A STORE that changes nothing takes no MODSEQ.
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.SetFlags("ms", inbox.ID, uids[:2], FlagsAdd, []string{FlagFlagged})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := highest(t, s, "ms", inbox.ID).HighestModSeq; got != h+1 {
		t.Fatalf("no-op STORE moved HIGHESTMODSEQ to %d", got)
	}
	archStart := highest(t, s, "ms", arch.ID).HighestModSeq
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.Move("ms", inbox.ID, uids[2:3], "Archive")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := highest(t, s, "ms", inbox.ID).HighestModSeq; got != h+2 {
		t.Fatalf("MOVE: source HIGHESTMODSEQ %d, want %d", got, h+2)
	}
	if got := highest(t, s, "ms", arch.ID).HighestModSeq; got != archStart+1 {
		t.Fatalf("MOVE: destination HIGHESTMODSEQ %d, want %d", got, archStart+1)
	}
	checkLog(t, s, "ms", inbox.ID)
	checkLog(t, s, "ms", arch.ID)

	// The log after h: the two flagged messages and the moved one.
	log, _, err := s.ReadLog("ms", inbox.ID, h, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []LogEntry{{ModSeq: h + 1, UID: uids[0]}, {ModSeq: h + 1, UID: uids[1]}, {ModSeq: h + 2, UID: uids[2], Expunged: true}}
	if !slices.Equal(logKeys(log), want) {
		t.Fatalf("log after %d:\n got %+v\nwant %+v", h, log, want)
	}
	if !log[0].Message.HasFlag(FlagFlagged) {
		t.Fatalf("log entry's record: %+v", log[0].Message)
	}
	if log, _, _ := s.ReadLog("ms", inbox.ID, h, 2); !slices.Equal(logKeys(log), want[:2]) {
		t.Fatalf("log with limit 2: %+v", log)
	}
	// The feed carried the same MODSEQs, in commit order.
	mu.Lock()
	defer mu.Unlock()
	var last uint64
	for _, c := range feed {
		if c.MailboxID != inbox.ID {
			continue
		}
		if c.ModSeq < last || c.Message.ModSeq != c.ModSeq && c.Kind != MessageExpunged {
			t.Fatalf("feed out of order or disagreeing: %+v (last %d)", c, last)
		}
		last = c.ModSeq
	}
	if last != h+2 {
		t.Fatalf("feed's last MODSEQ %d, want %d", last, h+2)
	}
}

// TestChangeFeedFollowsLog: what the change feed announced after a
// snapshot, compacted to each message's last change, is what ReadLog
// returns from the snapshot's HIGHESTMODSEQ: another process following
// the log sees what the in-process feed shows IDLE sessions.
func TestChangeFeedFollowsLog(t *testing.T) {
	s := openTestStore(t)
	inbox := newAccount(t, s, "follow")
	uids := appendN(t, s, "follow", "INBOX", 5)
	from := highest(t, s, "follow", inbox.ID).HighestModSeq
	last := make(map[uint32]LogEntry)
	s.OnChange(func(c Change) {
		if c.MailboxID == inbox.ID && c.Message != nil {
			last[c.Message.UID] = LogEntry{ModSeq: c.ModSeq, UID: c.Message.UID, Expunged: c.Kind == MessageExpunged}
		}
	})
	more := appendN(t, s, "follow", "INBOX", 2)
	s.Update(func(tx *Tx) error {
		_, err := tx.SetFlags("follow", inbox.ID, []uint32{uids[0], more[0]}, FlagsAdd, []string{FlagSeen})
		return err
	})
	s.Update(func(tx *Tx) error {
		_, err := tx.Expunge("follow", inbox.ID, []uint32{uids[1], more[1]})
		return err
	})
	s.Update(func(tx *Tx) error {
		_, err := tx.SetFlags("follow", inbox.ID, []uint32{uids[0]}, FlagsAdd, []string{"$Later"})
		return err
	})
	log, _, err := s.ReadLog("follow", inbox.ID, from, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fromFeed []LogEntry
	for _, e := range last {
		fromFeed = append(fromFeed, e)
	}
	slices.SortFunc(fromFeed, func(a, b LogEntry) int {
		if a.ModSeq != b.ModSeq {
			return int(int64(a.ModSeq) - int64(b.ModSeq))
		}
		return int(int64(a.UID) - int64(b.UID))
	})
	if !slices.Equal(logKeys(log), fromFeed) {
		t.Fatalf("log:  %+v\nfeed: %+v", log, fromFeed)
	}
}

// TestModSeqConcurrentWriters: 16 writers append, flag and expunge in one
// mailbox at once; every transaction's MODSEQ is above the one committed
// before it, and the log agrees with the messages afterwards, also after
// reopening the store.
func TestModSeqConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, Options{Dir: dir, GCInterval: -1, VanishedRetention: 50})
	inbox := newAccount(t, s, "busy")
	type commit struct {
		src    any
		modseq uint64
	}
	var mu sync.Mutex
	var seen []commit
	s.OnChange(func(c Change) {
		if c.MailboxID == inbox.ID && c.ModSeq != 0 {
			mu.Lock()
			seen = append(seen, commit{c.Source, c.ModSeq})
			mu.Unlock()
		}
	})
	const writers, rounds = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				var uid uint32
				src := new(int) // one tag per transaction
				if err := s.UpdateFrom(src, func(tx *Tx) error {
					res, err := tx.Append("busy", "INBOX", []byte(fmt.Sprintf("Subject: %d/%d\r\n\r\n", w, r)), AppendOptions{})
					if err == nil {
						uid = res.UID
					}
					return err
				}); err != nil {
					errs <- err
					return
				}
				if err := s.UpdateFrom(new(int), func(tx *Tx) error {
					_, err := tx.SetFlags("busy", inbox.ID, []uint32{uid}, FlagsAdd, []string{FlagSeen, fmt.Sprintf("$w%d", w)})
					return err
				}); err != nil {
					errs <- err
					return
				}
				if r%2 == 0 {
					if err := s.UpdateFrom(new(int), func(tx *Tx) error {
						_, err := tx.Expunge("busy", inbox.ID, []uint32{uid})
						return err
					}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mu.Lock()
	var prev commit
	for i, c := range seen {
		switch {
		case i == 0:
		case c.src == prev.src && c.modseq != prev.modseq:
			t.Fatalf("one transaction, two MODSEQs: %d and %d", prev.modseq, c.modseq)
		case c.src != prev.src && c.modseq <= prev.modseq:
			t.Fatalf("MODSEQ %d committed after %d", c.modseq, prev.modseq)
		}
		prev = c
	}
	mu.Unlock()
	wantTx := writers * (rounds*2 + (rounds+1)/2)
	info := highest(t, s, "busy", inbox.ID)
	start := info.HighestModSeq - uint64(wantTx)
	if prev.modseq != info.HighestModSeq {
		t.Fatalf("last MODSEQ announced %d, HIGHESTMODSEQ %d", prev.modseq, info.HighestModSeq)
	}
	checkLog(t, s, "busy", inbox.ID)
	// Expunges are kept up to the retention (plus its slack).
	log, _, _ := s.ReadLog("busy", inbox.ID, 0, 0)
	var gone int
	for _, e := range log {
		if e.Expunged {
			gone++
		}
	}
	if gone < 50 || gone > 50+50/8 {
		t.Fatalf("%d expunges kept, retention 50", gone)
	}
	s.Close()

	s = openAt(t, Options{Dir: dir, GCInterval: -1, VanishedRetention: 50})
	defer s.Close()
	if got := highest(t, s, "busy", inbox.ID); got != info {
		t.Fatalf("after reopening: %+v, before %+v", got, info)
	}
	checkLog(t, s, "busy", inbox.ID)
	uids := appendN(t, s, "busy", "INBOX", 1)
	msgs, _ := s.Messages("busy", inbox.ID)
	if m := msgs[len(msgs)-1]; m.UID != uids[0] || m.ModSeq != info.HighestModSeq+1 {
		t.Fatalf("first change after reopening: %+v, HIGHESTMODSEQ was %d (start %d)", m, info.HighestModSeq, start)
	}
}

// TestModSeqNeverReused: a mailbox deleted and created again, or a name
// given up by RENAME and created again, starts above every MODSEQ the name
// had, as well as getting a new UIDVALIDITY.
func TestModSeqNeverReused(t *testing.T) {
	s := openTestStore(t)
	newAccount(t, s, "re")
	appendN(t, s, "re", "Archive", 3)
	old, _ := s.Mailbox("re", "Archive")
	oldHigh := highest(t, s, "re", old.ID).HighestModSeq
	if err := s.DeleteMailbox("re", "Archive"); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Tx) error {
		_, err := tx.txn.Get(modseqStateKey("re", old.ID), nil)
		if err == nil {
			return fmt.Errorf("MODSEQ state of a deleted mailbox survived")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.CreateMailbox("re", NewMailbox{Name: "Archive"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	again, _ := s.Mailbox("re", "Archive")
	if h := highest(t, s, "re", again.ID).HighestModSeq; h <= oldHigh || again.UIDValidity == old.UIDValidity {
		t.Fatalf("re-created: HIGHESTMODSEQ %d (old %d), UIDVALIDITY %d (old %d)", h, oldHigh, again.UIDValidity, old.UIDValidity)
	}
	// RENAME INBOX: the new INBOX starts above the old one.
	appendN(t, s, "re", "INBOX", 5)
	inbox, _ := s.Mailbox("re", "INBOX")
	inboxHigh := highest(t, s, "re", inbox.ID).HighestModSeq
	if err := s.Update(func(tx *Tx) error { return tx.RenameMailbox("re", "INBOX", "Old") }); err != nil {
		t.Fatal(err)
	}
	newInbox, _ := s.Mailbox("re", "INBOX")
	if h := highest(t, s, "re", newInbox.ID).HighestModSeq; h <= inboxHigh {
		t.Fatalf("new INBOX HIGHESTMODSEQ %d, old INBOX reached %d", h, inboxHigh)
	}
	// The renamed mailbox keeps its history.
	oldBox, _ := s.Mailbox("re", "Old")
	if h := highest(t, s, "re", oldBox.ID).HighestModSeq; h != inboxHigh {
		t.Fatalf("renamed INBOX HIGHESTMODSEQ %d, want %d", h, inboxHigh)
	}
}

// TestVanishedBeyondRetention: a client asking for expunges after a MODSEQ
// older than the ones kept gets every UID that may have gone (all below
// UIDNEXT not present), never a list missing some; one asking from within
// the retention gets exactly the expunges.
func TestVanishedBeyondRetention(t *testing.T) {
	s := openAt(t, Options{InMemory: true, GCInterval: -1, VanishedRetention: 8})
	defer s.Close()
	inbox := newAccount(t, s, "v")
	uids := appendN(t, s, "v", "INBOX", 40)
	early := highest(t, s, "v", inbox.ID).HighestModSeq
	expunge := func(us ...uint32) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error {
			_, err := tx.Expunge("v", inbox.ID, us)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	// 20 expunges, one at a time: more than 8 + 8/8 are kept, so the
	// oldest are dropped.
	for i := 0; i < 20; i++ {
		expunge(uids[2*i])
	}
	recent := highest(t, s, "v", inbox.ID).HighestModSeq
	expunge(uids[1], uids[3])
	info := highest(t, s, "v", inbox.ID)
	if info.VanishedFloor <= early {
		t.Fatalf("floor %d not above %d after pruning", info.VanishedFloor, early)
	}
	got, exact, err := s.Vanished("v", inbox.ID, recent)
	if err != nil || !exact || !slices.Equal(got, []UIDRange{{uids[1], uids[1]}, {uids[3], uids[3]}}) {
		t.Fatalf("vanished since %d: %v exact=%v %v", recent, got, exact, err)
	}
	got, exact, err = s.Vanished("v", inbox.ID, early)
	if err != nil || exact {
		t.Fatalf("vanished since %d (before the floor): exact=%v %v", early, exact, err)
	}
	in := func(u uint32) bool {
		for _, r := range got {
			if r.Lo <= u && u <= r.Hi {
				return true
			}
		}
		return false
	}
	msgs, _ := s.Messages("v", inbox.ID)
	present := make(map[uint32]bool)
	for _, m := range msgs {
		present[m.UID] = true
		if in(m.UID) {
			t.Fatalf("UID %d reported vanished but present", m.UID)
		}
	}
	for _, u := range uids {
		if !present[u] && !in(u) {
			t.Fatalf("expunged UID %d missing from the answer %v", u, got)
		}
	}
	// From the current HIGHESTMODSEQ: nothing.
	if got, exact, _ := s.Vanished("v", inbox.ID, info.HighestModSeq); len(got) != 0 || !exact {
		t.Fatalf("vanished since HIGHESTMODSEQ: %v %v", got, exact)
	}
}

// TestModSeqSurvivesKill: a writer process appends, flags and expunges,
// syncing after each transaction and printing the MODSEQ it got; it is
// killed with SIGKILL mid-stream. Reopened, the store's HIGHESTMODSEQ is
// at least every MODSEQ printed, every printed expunge is in the log at
// its MODSEQ, and the next change goes above.
func TestModSeqSurvivesKill(t *testing.T) {
	if dir := os.Getenv("CERTMAIL_MODSEQ_WRITER"); dir != "" {
		modseqWriter(dir)
		return
	}
	dir := t.TempDir()
	s := openAt(t, Options{Dir: dir, GCInterval: -1})
	inbox := newAccount(t, s, "k")
	s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestModSeqSurvivesKill$")
	cmd.Env = append(os.Environ(), "CERTMAIL_MODSEQ_WRITER="+dir)
	if dsn, ok := dirDSNs.Load(dir); ok { // on PostgreSQL: the writer's database
		cmd.Env = append(cmd.Env, "CERTMAIL_MODSEQ_WRITER_DSN="+dsn.(string))
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type printed struct {
		kind   string
		uid    uint32
		modseq uint64
	}
	var lines []printed
	sc := bufio.NewScanner(out)
	for len(lines) < 300 && sc.Scan() {
		var p printed
		if _, err := fmt.Sscan(sc.Text(), &p.kind, &p.uid, &p.modseq); err != nil {
			t.Fatalf("writer said %q", sc.Text())
		}
		lines = append(lines, p)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(lines) < 300 {
		t.Fatalf("writer stopped after %d transactions", len(lines))
	}

	s = openAt(t, Options{Dir: dir, GCInterval: -1})
	defer s.Close()
	info := highest(t, s, "k", inbox.ID)
	log, _, err := s.ReadLog("k", inbox.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	gone := make(map[uint32]uint64)
	for _, e := range log {
		if e.Expunged {
			gone[e.UID] = e.ModSeq
		}
	}
	var last uint64
	for _, p := range lines {
		if p.modseq <= last {
			t.Fatalf("writer got MODSEQ %d after %d", p.modseq, last)
		}
		last = p.modseq
		if p.kind == "expunge" && gone[p.uid] != p.modseq {
			t.Fatalf("expunge of UID %d at MODSEQ %d lost (log says %d)", p.uid, p.modseq, gone[p.uid])
		}
	}
	if info.HighestModSeq < last {
		t.Fatalf("HIGHESTMODSEQ %d after the kill, below the %d acknowledged", info.HighestModSeq, last)
	}
	checkLog(t, s, "k", inbox.ID)
	appendN(t, s, "k", "INBOX", 1)
	msgs, _ := s.Messages("k", inbox.ID)
	if m := msgs[len(msgs)-1]; m.ModSeq != info.HighestModSeq+1 {
		t.Fatalf("first change after the kill has MODSEQ %d, HIGHESTMODSEQ was %d", m.ModSeq, info.HighestModSeq)
	}
	t.Logf("killed after %d acknowledged transactions; HIGHESTMODSEQ %d", len(lines), info.HighestModSeq)
}

// modseqWriter is the process TestModSeqSurvivesKill kills.
func modseqWriter(dir string) {
	opts := Options{Dir: dir, GCInterval: -1}
	if dsn := os.Getenv("CERTMAIL_MODSEQ_WRITER_DSN"); dsn != "" {
		e, err := pgkv.Open(context.Background(), dsn, pgkv.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		opts.Engine = e
	}
	s, err := Open(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	mb, err := s.Mailbox("k", "INBOX")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	say := func(kind string, uid uint32) {
		if err := s.Sync(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var ms uint64
		s.View(func(tx *Tx) error {
			info, err := tx.ModSeq("k", mb.ID)
			ms = info.HighestModSeq
			return err
		})
		fmt.Printf("%s %d %d\n", kind, uid, ms)
	}
	for i := 0; ; i++ {
		var uid uint32
		s.Update(func(tx *Tx) error {
			res, err := tx.Append("k", "INBOX", []byte(fmt.Sprintf("Subject: %d\r\n\r\n", i)), AppendOptions{})
			if err == nil {
				uid = res.UID
			}
			return err
		})
		say("append", uid)
		s.Update(func(tx *Tx) error {
			_, err := tx.SetFlags("k", mb.ID, []uint32{uid}, FlagsAdd, []string{FlagSeen})
			return err
		})
		say("flags", uid)
		if i%3 == 0 {
			s.Update(func(tx *Tx) error {
				_, err := tx.Expunge("k", mb.ID, []uint32{uid})
				return err
			})
			say("expunge", uid)
		}
	}
}

// TestWatchKeepsDerivedModSeq: after a restart, opening a mailbox (Watch,
// as SELECT does) derives its MODSEQ state from the records once and keeps
// it: the next SELECT does not read every record again (it did until
// something wrote to the mailbox: 90 ms a SELECT at 100,000 messages). The
// state kept is the one writers go on from: MODSEQs after it stay above
// every earlier one, and an expunge is counted.
func TestWatchKeepsDerivedModSeq(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, Options{Dir: dir, GCInterval: -1})
	inbox := newAccount(t, s, "a")
	for range 5 {
		appendOne(t, s, "a", "INBOX", nil)
	}
	if err := s.Update(func(tx *Tx) error {
		_, err := tx.Expunge("a", inbox.ID, []uint32{2})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var high uint64
	if err := s.View(func(tx *Tx) error {
		ms, err := tx.ModSeq("a", inbox.ID)
		high = ms.HighestModSeq
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openAt(t, Options{Dir: dir, GCInterval: -1})
	defer s.Close()
	var watched uint64
	watch := func() {
		t.Helper()
		if err := s.Watch("a", inbox.ID, "", func(_ *MailboxInfo, _ []*Message, f BoxFacts) { watched = f.HighestModSeq }); err != nil {
			t.Fatal(err)
		}
	}
	watch()
	if watched < high {
		t.Fatalf("HIGHESTMODSEQ after the restart %d, below %d", watched, high)
	}
	if !engines.Postgres() {
		s.msMu.Lock()
		st, ok := s.modseqCache[mboxRef{"a", inbox.ID}]
		s.msMu.Unlock()
		if !ok {
			t.Fatal("the state SELECT derived was not kept")
		}
		if st.highest != watched || st.gone != 1 {
			t.Fatalf("kept state: highest %d gone %d, want %d and 1 expunge", st.highest, st.gone, watched)
		}
	}
	uid := appendOne(t, s, "a", "INBOX", nil)
	var m *Message
	if err := s.View(func(tx *Tx) error {
		var err error
		m, err = tx.Message("a", inbox.ID, uid)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if m.ModSeq <= watched {
		t.Fatalf("MODSEQ of a message appended after SELECT %d, not above %d", m.ModSeq, watched)
	}
	watch()
	if watched != m.ModSeq {
		t.Fatalf("HIGHESTMODSEQ %d, want %d", watched, m.ModSeq)
	}
}
