package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func runToolErr(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, name, args...).Run()
}

// TestMbsync syncs INBOX both ways with mbsync (isync): server to Maildir,
// then a new local message and a local flag change back to the server.
func TestMbsync(t *testing.T) {
	mbsync := requireTool(t, "mbsync")
	s := startServer(t)
	s.addUser("carol", "pa55word")
	s.deliverSwaks("carol@example.org", "to sync 1", "sync body 1")
	s.deliverSwaks("carol@example.org", "to sync 2", "sync body 2")

	dir := t.TempDir()
	maildir := filepath.Join(dir, "mail")
	host, port, _ := net.SplitHostPort(s.imap)
	conf := fmt.Sprintf(`IMAPAccount certmail
Host %s
Port %s
User carol
Pass pa55word
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account certmail

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
Sync All
SyncState *
`, host, port, maildir, maildir)
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, []string{"HOME=" + dir}, mbsync, "-c", confPath, "-a")

	local := maildirFiles(t, filepath.Join(maildir, "INBOX"))
	if len(local) != 2 {
		t.Fatalf("after first sync, local INBOX has %d messages, want 2: %v", len(local), local)
	}
	// Mark one message seen locally, and write a new one.
	seenFile := local[0]
	base := filepath.Base(seenFile)
	if i := strings.LastIndex(base, ":2,"); i >= 0 {
		base = base[:i]
	}
	if err := os.Rename(seenFile, filepath.Join(maildir, "INBOX", "cur", base+":2,S")); err != nil {
		t.Fatal(err)
	}
	newMsg := filepath.Join(maildir, "INBOX", "new", "1700000000.local.host")
	if err := os.WriteFile(newMsg, []byte("From: carol@example.org\r\nSubject: written locally\r\n\r\nlocal body\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, []string{"HOME=" + dir}, mbsync, "-c", confPath, "-a")

	c, err := imapclient.DialInsecure(s.imap, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("carol", "pa55word").Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 {
		t.Fatalf("server INBOX has %d messages after syncing back, want 3", sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	var subjects []string
	for _, m := range msgs {
		subjects = append(subjects, m.Envelope.Subject)
		for _, f := range m.Flags {
			if f == imap.FlagSeen {
				seen++
			}
		}
	}
	if seen != 1 || !strings.Contains(strings.Join(subjects, "|"), "written locally") {
		t.Fatalf("server after sync: %d seen, subjects %q", seen, subjects)
	}
}

func maildirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			continue
		}
		for _, e := range ents {
			out = append(out, filepath.Join(dir, sub, e.Name()))
		}
	}
	return out
}
