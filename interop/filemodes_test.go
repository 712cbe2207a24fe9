package interop

import (
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestDataDirPrivate runs the real binary under a permissive umask (022,
// the usual default): it must refuse a data directory other users can
// enter, saying how to fix it, and create everything it writes (Badger's
// tables and logs, keys, the admin socket, backups, exports) readable by
// its owner only. A file left 0644 by an older version is tightened.
func TestDataDirPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })

	// A directory other users can reach: under /tmp (1777), itself 0755.
	base, err := os.MkdirTemp("", "certmail-modes-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}

	refused := func(args ...string) {
		t.Helper()
		cmd := exec.Command(certmailBin, args...)
		cmd.Stdin = strings.NewReader("pw\n")
		out, err := runWithTimeout(cmd, 20*time.Second)
		if err == nil || !strings.Contains(out, "chmod 700 "+data) {
			t.Fatalf("certmail %s on a 0755 data directory: %v\n%s\nwant a refusal that says `chmod 700 %s`", strings.Join(args, " "), err, out, data)
		}
	}
	refused("serve", "--data", data, "--imap", freeAddr(t), "--lmtp", freeAddr(t), "--http", "")
	refused("user", "add", "alice", "--password-stdin", "--data", data)
	if ents, _ := os.ReadDir(data); len(ents) != 0 {
		t.Fatalf("refused, yet wrote into the data directory: %v", ents)
	}

	// Fixed as the message says, it runs.
	if err := os.Chmod(data, 0o700); err != nil {
		t.Fatal(err)
	}
	s := startServerIn(t, data)
	s.waitListening(s.http)
	s.addUser("alice", "alice-pw")
	if err := lmtpDeliver(t, s.lmtp, []byte("From: bob@example.net\r\nSubject: hello\r\n\r\nplain mail\r\n")); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(certmailOut(t, "token", "add", "acme", "--data", data))
	req, _ := json.Marshal(map[string]any{"message": "From: clerk@court.example\r\nSubject: Summons\r\n\r\nCase 4711.\r\n",
		"recipients": []string{"alice"}})
	status, body := httpDo(t, "POST", "http://"+s.http+"/v1/items", token, req)
	if status != http.StatusCreated {
		t.Fatalf("submit: %d %s", status, body)
	}
	var sub struct {
		Items []struct{ Label string } `json:"items"`
	}
	if err := json.Unmarshal(body, &sub); err != nil || len(sub.Items) != 1 {
		t.Fatalf("submit answer: %s %v", body, err)
	}
	out := t.TempDir()
	exports := map[string][]string{
		"backup":   {"backup", "--out", filepath.Join(out, "backup.tar"), "--data", data},
		"evidence": {"evidence", sub.Items[0].Label, "-o", filepath.Join(out, "bundle.json"), "--data", data},
		"keygen":   {"keygen", "--out", filepath.Join(out, "alice.key")},
	}
	for _, args := range exports {
		certmailOut(t, args...)
	}
	sock := filepath.Join(data, "admin.sock")
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v %v, want mode 0600", st.Mode(), err)
	}
	s.stop()

	checkPrivate := func() {
		t.Helper()
		n := 0
		err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			n++
			if perm := info.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %04o: readable or writable by others", p, perm)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n < 5 {
			t.Fatalf("only %d entries in the data directory", n)
		}
	}
	checkPrivate()
	for _, f := range []string{"backup.tar", "bundle.json", "alice.key"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, st.Mode(), err)
		}
	}

	// A data directory written by an older certmail: its files were
	// 0644. The next start tightens them.
	loose := filepath.Join(data, "MANIFEST")
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	s = startServerIn(t, data)
	s.stop()
	if st, err := os.Stat(loose); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("MANIFEST left at %v (%v) after a start, want 0600", st.Mode(), err)
	}
	checkPrivate()
}

// lmtpDeliver sends one message to alice over LMTP and returns the reply
// that refused it (nil: delivered).
func lmtpDeliver(t *testing.T, addr string, msg []byte) error {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("LMTP dial: %v", err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("mta.test"); err != nil {
		t.Fatalf("LHLO: %v", err)
	}
	if err := c.Mail("sender@example.net", &smtp.MailOptions{Size: int64(len(msg))}); err != nil {
		return err
	}
	if err := c.Rcpt("alice@example.org", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}
