package mailbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// A crash test's writer is the test binary re-executed to run the same
// test with CERTMAIL_MODSEQ_CRASH=<mode> <dir>; it prints "<kind> <uid>
// <modseq>" for each change as soon as its transaction has committed:
// what a client would be told. The background sync is off, so nothing is
// synced unless the store decides to.
func crashWriterEnv() (mode, dir string, ok bool) {
	v := os.Getenv("CERTMAIL_MODSEQ_CRASH")
	if v == "" {
		return "", "", false
	}
	if _, err := fmt.Sscan(v, &mode, &dir); err != nil {
		fmt.Fprintln(os.Stderr, "CERTMAIL_MODSEQ_CRASH:", err)
		os.Exit(2)
	}
	return mode, dir, true
}

type printedChange struct {
	kind   string
	uid    uint32
	modseq uint64
}

// runCrashWriter starts the writer on dir, reads n changes from it and
// kills it with SIGKILL.
func runCrashWriter(t *testing.T, mode, dir string, n int) []printedChange {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$")
	cmd.Env = append(os.Environ(), "CERTMAIL_MODSEQ_CRASH="+mode+" "+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []printedChange
	sc := bufio.NewScanner(out)
	for len(lines) < n && sc.Scan() {
		var p printedChange
		if _, err := fmt.Sscan(sc.Text(), &p.kind, &p.uid, &p.modseq); err != nil {
			cmd.Process.Kill()
			t.Fatalf("writer said %q", sc.Text())
		}
		lines = append(lines, p)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(lines) < n {
		t.Fatalf("writer stopped after %d changes", len(lines))
	}
	return lines
}

func crashWriter(mode, dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash writer:", err)
		os.Exit(2)
	}
	s, err := Open(Options{Dir: dir, GCInterval: -1, syncEvery: -1})
	if err != nil {
		fail(err)
	}
	if mode == "powercut" {
		// What is durable is what the last fsync wrote: the directory as
		// it is right after each sync (nothing writes between the sync and
		// the copy: the only writer is this goroutine) is what a power cut
		// at any moment until the next sync would leave. Badger writes
		// through shared maps, so the files read now hold every committed
		// change, synced or not.
		s.modseqReserveStep = 40
		s.syncer = newGroupSyncer(func() error {
			if err := s.db.Sync(); err != nil {
				return err
			}
			return snapshotDir(dir, dir+".image")
		})
		if err := s.Sync(); err != nil {
			fail(err)
		}
	}
	mb, err := s.Mailbox("k", "INBOX")
	if err != nil {
		fail(err)
	}
	msgs, err := s.Messages("k", mb.ID)
	if err != nil || len(msgs) == 0 {
		fail(fmt.Errorf("messages: %v (%d)", err, len(msgs)))
	}
	for i := 0; ; i++ {
		uid := msgs[i%len(msgs)].UID
		op := FlagsAdd
		if i/len(msgs)%2 == 1 {
			op = FlagsRemove
		}
		var ms uint64
		if err := s.Update(func(tx *Tx) error {
			changed, err := tx.SetFlags("k", mb.ID, []uint32{uid}, op, []string{FlagSeen})
			if err == nil && len(changed) == 1 {
				ms = changed[0].ModSeq
			}
			return err
		}); err != nil {
			fail(err)
		}
		fmt.Printf("flags %d %d\n", uid, ms)
		if mode == "kill" && i%5 == 4 {
			var gone []uint32
			if err := s.Update(func(tx *Tx) error {
				res, err := tx.Append("k", "INBOX", []byte(fmt.Sprintf("Subject: %d\r\n\r\n", i)), AppendOptions{})
				if err != nil {
					return err
				}
				gone, err = tx.Expunge("k", mb.ID, []uint32{res.UID})
				return err
			}); err != nil || len(gone) != 1 {
				fail(fmt.Errorf("append and expunge: %v %v", gone, err))
			}
			var info ModSeqInfo
			s.View(func(tx *Tx) error {
				info, err = tx.ModSeq("k", mb.ID)
				return err
			})
			fmt.Printf("expunge %d %d\n", gone[0], info.HighestModSeq)
		}
	}
}

// snapshotDir replaces image with a copy of dir's files.
func snapshotDir(dir, image string) error {
	tmp := image + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(dir, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(image); err != nil {
		return err
	}
	return os.Rename(tmp, image)
}

// copyFile copies a file, leaving holes where it is zero: Badger's files
// are large and mostly unwritten (the value log 256 MB).
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	var size int64
	buf := make([]byte, 1<<16)
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			var werr error
			if bytes.Count(buf[:n], []byte{0}) == n {
				_, werr = out.Seek(int64(n), io.SeekCurrent)
			} else {
				_, werr = out.Write(buf[:n])
			}
			if werr != nil {
				out.Close()
				return werr
			}
			size += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// crashStore makes a store with 20 messages in k's INBOX, closed.
func crashStore(t *testing.T) (dir string, inbox *MailboxInfo) {
	dir = filepath.Join(t.TempDir(), "data")
	s := openBadgerAt(t, Options{Dir: dir, GCInterval: -1})
	s.modseqReserveStep = 40 // as in the writer: raised and synced often
	inbox = newAccount(t, s, "k")
	appendN(t, s, "k", "INBOX", 20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, inbox
}

// checkAfterCrash: every MODSEQ the writer printed is at most the
// reopened store's HIGHESTMODSEQ, and the next change goes above all of
// them: no MODSEQ a client saw is handed out again.
func checkAfterCrash(t *testing.T, s *Store, inbox *MailboxInfo, lines []printedChange) {
	t.Helper()
	info := highest(t, s, "k", inbox.ID)
	var top uint64
	for _, p := range lines {
		top = max(top, p.modseq)
	}
	if info.HighestModSeq < top {
		t.Errorf("HIGHESTMODSEQ %d after the crash, below the %d a client was told", info.HighestModSeq, top)
	}
	msgs, err := s.Messages("k", inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	var changed []*Message
	if err := s.Update(func(tx *Tx) error {
		var err error
		changed, err = tx.SetFlags("k", inbox.ID, []uint32{msgs[0].UID}, FlagsAdd, []string{FlagFlagged})
		return err
	}); err != nil || len(changed) != 1 {
		t.Fatalf("change after the crash: %v %v", changed, err)
	}
	if ms := changed[0].ModSeq; ms <= top || ms != info.HighestModSeq+1 {
		t.Errorf("first change after the crash took MODSEQ %d: HIGHESTMODSEQ was %d, a client saw up to %d", ms, info.HighestModSeq, top)
	}
	checkLog(t, s, "k", inbox.ID)
}

// A process killed with SIGKILL loses none of its committed changes, synced
// or not: Badger writes through shared memory maps, so a commit is in the
// kernel's page cache when it returns. The writer syncs nothing (no
// background sync either); reopened, every flag change and expunge it
// printed is there with its MODSEQ.
func TestModSeqUnsyncedChangesSurviveKill(t *testing.T) {
	if mode, dir, ok := crashWriterEnv(); ok {
		crashWriter(mode, dir)
		return
	}
	dir, inbox := crashStore(t)
	lines := runCrashWriter(t, "kill", dir, 300)
	s := openBadgerAt(t, Options{Dir: dir, GCInterval: -1})
	defer s.Close()
	log, _, err := s.ReadLog("k", inbox.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := make(map[uint32]uint64) // UID -> MODSEQ of its last change, or of its expunge
	for _, e := range log {
		at[e.UID] = e.ModSeq
	}
	last := make(map[uint32]uint64)
	for _, p := range lines {
		last[p.uid] = p.modseq
	}
	// The writer may have gone on past what was read before the kill:
	// the store may hold later changes, never older ones.
	for uid, ms := range last {
		if at[uid] < ms {
			t.Errorf("UID %d: last change printed at MODSEQ %d, the reopened store has %d", uid, ms, at[uid])
		}
	}
	checkAfterCrash(t, s, inbox, lines)
}

// A power cut loses what was committed since the last sync: here the
// store's directory is put back as it was at the writer's last fsync
// after the writer is killed. Flag changes are not synced one by one, so
// the MODSEQs of the last ones are lost while clients saw them; the store
// must not hand them out again. (Before the reserve, the store derived
// HIGHESTMODSEQ from the records left and the next change reused a MODSEQ
// a client had seen.) The writer's reserve step is 40, so the 150 changes
// also raise the reserve, each raise synced before its change commits.
func TestModSeqNotReusedAfterPowerCut(t *testing.T) {
	if mode, dir, ok := crashWriterEnv(); ok {
		crashWriter(mode, dir)
		return
	}
	dir, inbox := crashStore(t)
	lines := runCrashWriter(t, "powercut", dir, 150)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir+".image", dir); err != nil {
		t.Fatal(err)
	}
	s := openBadgerAt(t, Options{Dir: dir, GCInterval: -1})
	defer s.Close()
	msgs, err := s.Messages("k", inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kept uint64
	for _, m := range msgs {
		kept = max(kept, m.ModSeq)
	}
	if kept >= lines[len(lines)-1].modseq {
		t.Fatalf("no change was lost (newest record MODSEQ %d): the test simulates nothing", kept)
	}
	t.Logf("%d changes printed up to MODSEQ %d; the image keeps records up to %d", len(lines), lines[len(lines)-1].modseq, kept)
	checkAfterCrash(t, s, inbox, lines)

	// A clean close after that: no further jump.
	info := highest(t, s, "k", inbox.ID)
	s.Close()
	s = openBadgerAt(t, Options{Dir: dir, GCInterval: -1})
	defer s.Close()
	if got := highest(t, s, "k", inbox.ID); got.HighestModSeq != info.HighestModSeq {
		t.Errorf("HIGHESTMODSEQ %d after a clean close and open, was %d", got.HighestModSeq, info.HighestModSeq)
	}
}
