package mailbox

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

// countFacts is what the running totals must equal: a walk over every
// record, as SELECT and STATUS did before the totals.
func countFacts(msgs []*Message) BoxFacts {
	f := BoxFacts{Status: MailboxStatus{Messages: uint32(len(msgs))}}
	kw := map[string]bool{}
	for i, m := range msgs {
		if !m.HasFlag(FlagSeen) {
			f.Status.Unseen++
			if f.FirstUnseen == 0 {
				f.FirstUnseen = uint32(i + 1)
			}
		}
		if m.HasFlag(FlagDeleted) {
			f.Status.Deleted++
			f.Status.DeletedSize += m.Size
		}
		f.Status.Size += m.Size
		for _, fl := range m.Flags {
			if !isSystemFlag(fl) {
				kw[fl] = true
			}
		}
	}
	for k := range kw {
		f.Keywords = append(f.Keywords, k)
	}
	sort.Strings(f.Keywords)
	return f
}

func checkFacts(t *testing.T, s *Store, acct string, id uint32, step string) {
	t.Helper()
	var got, want BoxFacts
	err := s.Watch(acct, id, "", func(_ *MailboxInfo, msgs []*Message, f BoxFacts) {
		got, want = f, countFacts(msgs)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != want.Status || got.FirstUnseen != want.FirstUnseen || !slices.Equal(got.Keywords, want.Keywords) {
		t.Fatalf("%s: running totals %+v, counted %+v", step, got, want)
	}
}

// TestIndexTotalsFollowChanges drives a mailbox through random appends,
// flag changes and expunges, and after each compares the totals SELECT
// and STATUS report with a count over the records, then again after the
// index is loaded afresh from disk.
func TestIndexTotalsFollowChanges(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, Options{Dir: dir, GCInterval: -1})
	inbox := newAccount(t, s, "carol")
	rng := rand.New(rand.NewPCG(1, 2))
	flagPool := []string{FlagSeen, FlagDeleted, FlagFlagged, FlagAnswered, "$Forwarded", "Work", "work", "$Junk"}
	pick := func() []string {
		var fs []string
		for _, f := range flagPool {
			if rng.IntN(3) == 0 {
				fs = append(fs, f)
			}
		}
		return fs
	}
	var uids []uint32
	for step := 0; step < 400; step++ {
		op := rng.IntN(10)
		// Every choice is made before the transaction, and uids follows
		// it only once it has committed: a transaction may run more than
		// once (on a shared engine, one that conflicts runs again).
		raw := fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", step, make([]byte, rng.IntN(200)))
		flags := pick()
		var some []uint32
		for _, u := range uids {
			if rng.IntN(4) == 0 {
				some = append(some, u)
			}
		}
		flagOp := FlagOp(rng.IntN(3))
		gone := -1
		if len(uids) > 0 {
			gone = rng.IntN(len(uids))
		}
		var added uint32
		err := s.Update(func(tx *Tx) error {
			switch {
			case op < 4 || len(uids) == 0:
				res, err := tx.Append("carol", "INBOX", []byte(raw), AppendOptions{Flags: flags})
				if err != nil {
					return err
				}
				added = res.UID
			case op < 8:
				_, err := tx.SetFlags("carol", inbox.ID, some, flagOp, flags)
				return err
			default:
				if _, err := tx.Expunge("carol", inbox.ID, uids[gone:gone+1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		switch {
		case op < 4 || len(uids) == 0:
			uids = append(uids, added)
		case op < 8:
		default:
			uids = slices.Delete(uids, gone, gone+1)
		}
		checkFacts(t, s, "carol", inbox.ID, fmt.Sprintf("step %d (op %d)", step, op))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, Options{Dir: dir, GCInterval: -1})
	defer s.Close()
	checkFacts(t, s, "carol", inbox.ID, "after reopening")
	_, st, err := s.Status("carol", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != uint32(len(uids)) {
		t.Fatalf("STATUS MESSAGES %d, want %d", st.Messages, len(uids))
	}
}

// TestIndexEviction: an index nobody reads is dropped, commits go on
// without it, and the next read loads what the disk has, totals included.
func TestIndexEviction(t *testing.T) {
	s := openAt(t, Options{Dir: t.TempDir(), GCInterval: -1, IndexIdle: 200 * time.Millisecond})
	defer s.Close()
	inbox := newAccount(t, s, "dave")
	appendOne := func(flags ...string) {
		t.Helper()
		if err := s.Update(func(tx *Tx) error {
			_, err := tx.Append("dave", "INBOX", []byte("Subject: x\r\n\r\nbody\r\n"), AppendOptions{Flags: flags})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	appendOne(FlagSeen)
	checkFacts(t, s, "dave", inbox.ID, "loaded")
	loaded := func() bool {
		s.idx.mu.RLock()
		defer s.idx.mu.RUnlock()
		return s.idx.boxes[mboxRef{"dave", inbox.ID}] != nil
	}
	if !loaded() {
		t.Fatal("index not loaded after a read")
	}
	// A read keeps it; none for longer than IndexIdle lets it go (the
	// evictor looks every second).
	deadline := time.Now().Add(5 * time.Second)
	for loaded() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if loaded() {
		t.Fatal("idle index still loaded after 5 s")
	}
	appendOne("Work")
	appendOne()
	checkFacts(t, s, "dave", inbox.ID, "reloaded")
	_, st, err := s.Status("dave", "INBOX")
	if err != nil || st.Messages != 3 || st.Unseen != 2 {
		t.Fatalf("STATUS after reload: %+v %v", st, err)
	}
	// Evicting by hand what was just read takes nothing.
	if n := s.evictIdleIndexes(time.Hour); n != 0 {
		t.Fatalf("evicted %d indexes read just now", n)
	}
}

// TestIndexLoader: loading a mailbox's index decodes its records into
// slabs (indexLoader), a few dozen allocations for thousands of records
// where there was one a record, and builds the same index as adding each
// record by itself: records in order, running totals, MODSEQ.
func TestIndexLoader(t *testing.T) {
	const n = 5000
	recs := make([][]byte, n)
	for i := range recs {
		m := Message{UID: uint32(i + 1), Size: int64(100 + i), Blob: uint64(i), ModSeq: uint64(n - i),
			InternalDate: time.Unix(int64(1e9+i), 0).UTC(), Saved: int64(1e9 + i)}
		switch i % 3 {
		case 0:
			m.Flags = []string{FlagSeen}
		case 1:
			m.Flags = []string{FlagDeleted, "$Junk"}
		}
		recs[i] = encodeMessage(&m)
	}
	var want boxIndex
	for _, r := range recs {
		m := new(Message)
		if err := decodeMessage(r, m); err != nil {
			t.Fatal(err)
		}
		want.add(m)
	}
	var got boxIndex
	allocs := testing.AllocsPerRun(1, func() {
		var ld indexLoader
		for _, r := range recs {
			if err := decodeMessage(r, ld.next()); err != nil {
				t.Fatal(err)
			}
		}
		got = boxIndex{}
		ld.fill(&got)
	})
	if len(got.msgs) != n {
		t.Fatalf("%d records, want %d", len(got.msgs), n)
	}
	for i := range got.msgs {
		if g, w := got.msgs[i], want.msgs[i]; g.UID != w.UID || !slices.Equal(g.Flags, w.Flags) || g.Size != w.Size || g.ModSeq != w.ModSeq || !g.InternalDate.Equal(w.InternalDate) {
			t.Fatalf("record %d: %+v, want %+v", i, g, w)
		}
	}
	if got.status() != want.status() || got.modseq != want.modseq || !slices.Equal(got.keywordList(), want.keywordList()) {
		t.Errorf("loaded: %+v %d %q, want %+v %d %q", got.status(), got.modseq, got.keywordList(), want.status(), want.modseq, want.keywordList())
	}
	// A record's own allocations are its flags' (system flags are
	// constants: flagString); the records and the index's slice are a
	// few dozen in all, where each record was one.
	flagAllocs := 0
	for _, m := range want.msgs {
		if len(m.Flags) > 0 {
			flagAllocs++
		}
		for _, f := range m.Flags {
			if !isSystemFlag(f) {
				flagAllocs++
			}
		}
	}
	t.Logf("%d records: %.0f allocations, %d for flags", n, allocs, flagAllocs)
	if max := float64(flagAllocs + 100); allocs > max {
		t.Errorf("%d records: %.0f allocations, want at most %.0f", n, allocs, max)
	}
}
