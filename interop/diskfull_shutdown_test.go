package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiskFullAtShutdown: the filesystem fills to the last byte under a
// running server that holds acknowledged mail in Badger's memtable, then
// the server is stopped. Badger writes its memtable out to a table when
// it closes, through a memory map: on a full disk that was SIGBUS, the
// process died instead of exiting. It must exit cleanly, and once space
// is freed every message it answered 250 for must be there.
func TestDiskFullAtShutdown(t *testing.T) {
	fs := mountTmpfs(t, "48m")
	data := filepath.Join(fs, "data")
	cfg := writeConfig(t, "[limits]\ndisk_reserve = \"8MiB\"\n")
	s := startServerIn(t, data, "--config", cfg)
	s.addUser("alice", "alice-pw")
	body := strings.Repeat(strings.Repeat("y", 76)+"\r\n", 64)
	const n = 20
	for i := range n {
		msg := fmt.Sprintf("From: sender@example.net\r\nTo: alice@example.org\r\nSubject: kept %d\r\nMessage-ID: <kept-%d@test>\r\n\r\n%s", i, i, body)
		if err := lmtpDeliver(t, s.lmtp, []byte(msg)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	filler := filepath.Join(fs, "filler")
	fillDisk(t, filler)

	proc := s.cmd
	s.stop()
	if code := proc.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("certmail serve stopped on a full disk: %v (exit %d):\n%s", proc.ProcessState, code, s.logText())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s = startServerIn(t, data, "--config", cfg)
	c := imapLogin(t, s.imap, "alice", "alice-pw")
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != n {
		t.Fatalf("INBOX has %d messages after the restart, %d were acknowledged", sel.NumMessages, n)
	}
	c.Logout().Wait()
}
