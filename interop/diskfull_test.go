package interop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// mountTmpfs mounts a tmpfs of size on a new directory and unmounts it
// when the test ends (after the server registered later has stopped).
// It fails, not skips, where it cannot mount: the test needs root.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mounting a %s tmpfs on %s (this test needs root, for a small filesystem to fill): %v\n%s", size, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

func wantDiskFullReply(t *testing.T, what string, err error) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) ||
		!strings.Contains(se.Message, "disk is full") {
		t.Fatalf("%s: got %v, want 452 4.3.1 saying the disk is full", what, err)
	}
}

func imapAppend(c *imapclient.Client, msg string) error {
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write([]byte(msg)); err != nil {
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}

// fillDisk writes a file on dir's filesystem until no space is left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for range 1024 { // the tmpfs is far smaller than 1 GiB
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatalf("wrote 1 GiB into %s without filling the disk", path)
}

// TestDiskFull fills the filesystem under a running server, first with
// mail until the server refuses it, then with a file to the last byte.
// The server must never die (Badger writes through memory maps: on a
// full disk that was SIGBUS), must refuse new mail on every way in with
// a reply that says the disk is full, keep serving reads, and take mail
// again by itself once space is freed.
func TestDiskFull(t *testing.T) {
	fs := mountTmpfs(t, "48m")
	data := filepath.Join(fs, "data")
	cfg := writeConfig(t, "[limits]\ndisk_reserve = \"8MiB\"\n")
	s := startServerIn(t, data, "--config", cfg)
	s.waitListening(s.http)
	s.addUser("alice", "alice-pw")
	token := strings.TrimSpace(certmailOut(t, "token", "add", "acme", "--config", cfg, "--data", data))
	alive := func(when string) {
		t.Helper()
		select {
		case <-s.exited:
			t.Fatalf("certmail serve died %s:\n%s", when, s.logText())
		default:
		}
	}
	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", 512<<10/78)
	message := func(i int) []byte {
		return []byte(fmt.Sprintf("From: sender@example.net\r\nTo: alice@example.org\r\nSubject: fill %d\r\nMessage-ID: <fill-%d@test>\r\n\r\n%s", i, i, body))
	}

	// Mail until the server says the disk is full: 48 MiB hold fewer
	// than 96 messages of 512 KiB.
	delivered := 0
	for i := range 96 {
		err := lmtpDeliver(t, s.lmtp, message(i))
		if err != nil {
			wantDiskFullReply(t, fmt.Sprintf("message %d", i), err)
			break
		}
		delivered++
	}
	if delivered == 0 || delivered == 96 {
		t.Fatalf("%d of 96 messages delivered before the disk was full", delivered)
	}
	alive("filling the disk with mail")
	t.Logf("%d messages of 512 KiB delivered before 452", delivered)

	// Then to the last byte, as a runaway log file would.
	filler := filepath.Join(fs, "filler")
	fillDisk(t, filler)

	c := imapLogin(t, s.imap, "alice", "alice-pw")
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != uint32(delivered) {
		t.Fatalf("INBOX has %d messages, %d were delivered", sel.NumMessages, delivered)
	}
	// Reads go on: FETCH BODY[] (which would set \Seen) and a search.
	msgs, err := c.Fetch(imap.SeqSetNum(1, sel.NumMessages), &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil {
		t.Fatalf("FETCH on a full disk: %v", err)
	}
	if len(msgs) != 2 || !bytes.Equal(withoutTrace(msgs[0].BodySection[0].Bytes), message(0)) ||
		!bytes.Equal(withoutTrace(msgs[1].BodySection[0].Bytes), message(delivered-1)) {
		t.Fatalf("FETCH on a full disk returned %d messages, not the ones delivered", len(msgs))
	}
	if _, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "fill 3"}}}, nil).Wait(); err != nil {
		t.Fatalf("SEARCH on a full disk: %v", err)
	}
	// APPEND: NO, saying why (not SERVERBUG).
	small := "From: alice@example.org\r\nSubject: draft\r\n\r\nhello\r\n"
	err = imapAppend(c, small)
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeOverQuota || !strings.Contains(ie.Text, "disk is full") {
		t.Fatalf("APPEND on a full disk: got %v, want NO [OVERQUOTA] saying the disk is full", err)
	}
	// LMTP, even a small message.
	wantDiskFullReply(t, "LMTP on a full disk", lmtpDeliver(t, s.lmtp, []byte(small)))
	// certmail deliver (through the admin socket): EX_TEMPFAIL.
	cmd := exec.Command(certmailBin, "deliver", "--to", "alice", "--config", cfg, "--data", data)
	cmd.Stdin = strings.NewReader(small)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 75 || !strings.Contains(string(out), "disk is full") {
		t.Fatalf("certmail deliver on a full disk: %v %s, want exit 75 saying the disk is full", err, out)
	}
	// HTTP submission: 507 Insufficient Storage.
	req, _ := json.Marshal(map[string]any{"message": small, "recipients": []string{"alice"}})
	status, resp := httpDo(t, "POST", "http://"+s.http+"/v1/items", token, req)
	if status != http.StatusInsufficientStorage || !strings.Contains(string(resp), "disk is full") {
		t.Fatalf("submit on a full disk: %d %s, want 507 saying the disk is full", status, resp)
	}
	alive("with the disk full")

	// Space returns: everything takes mail again, without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := lmtpDeliver(t, s.lmtp, []byte(small)); err != nil {
		t.Fatalf("LMTP after space returned: %v", err)
	}
	if err := imapAppend(c, small); err != nil {
		t.Fatalf("APPEND after space returned: %v", err)
	}
	cmd = exec.Command(certmailBin, "deliver", "--to", "alice", "--config", cfg, "--data", data)
	cmd.Stdin = strings.NewReader(small)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("certmail deliver after space returned: %v %s", err, out)
	}
	if status, resp := httpDo(t, "POST", "http://"+s.http+"/v1/items", token, req); status != http.StatusCreated {
		t.Fatalf("submit after space returned: %d %s", status, resp)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	// The LMTP message, the APPEND, the deliver and the certified stub.
	if *st.NumMessages != uint32(delivered+4) {
		t.Fatalf("INBOX has %d messages after space returned, want %d", *st.NumMessages, delivered+4)
	}
	c.Logout().Wait()
	for _, want := range []string{"disk nearly full", "disk space recovered"} {
		if !strings.Contains(s.logText(), want) {
			t.Errorf("the log does not say %q", want)
		}
	}

	// A clean stop: the store closes (its memtable flush needs space
	// too) and the process exits 0.
	proc := s.cmd
	s.stop()
	if code := proc.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("certmail serve exited %d:\n%s", code, s.logText())
	}
}
