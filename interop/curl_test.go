package interop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCurl uses curl's IMAP URLs (RFC 5092): list mailboxes, fetch a
// message by UID, search, examine, and upload (APPEND) a message.
func TestCurl(t *testing.T) {
	curl := requireTool(t, "curl")
	s := startServer(t)
	s.addUser("bob", "hunter2")
	s.deliverSwaks("bob@example.org", "curl one", "the first body")
	s.deliverSwaks("bob@example.org", "curl two", "the second body")
	base := "imap://" + s.imap
	auth := []string{"--silent", "--show-error", "--user", "bob:hunter2"}

	out := runTool(t, nil, curl, append(auth, base+"/")...)
	for _, want := range []string{"INBOX", "Sent", "Trash", "Archive"} {
		if !strings.Contains(out, want) {
			t.Errorf("curl LIST lacks %s:\n%s", want, out)
		}
	}
	out = runTool(t, nil, curl, append(auth, base+"/INBOX;UID=2")...)
	if !strings.Contains(out, "Subject: curl two") || !strings.Contains(out, "the second body") {
		t.Errorf("curl fetch UID 2:\n%s", out)
	}
	out = runTool(t, nil, curl, append(auth, base+"/INBOX?SUBJECT%20%22curl%20one%22")...)
	if !strings.Contains(out, "SEARCH 1") {
		t.Errorf("curl search:\n%s", out)
	}
	out = runTool(t, nil, curl, append(auth, "-X", "EXAMINE INBOX", base)...)
	if !strings.Contains(out, "2 EXISTS") {
		t.Errorf("curl EXAMINE:\n%s", out)
	}
	msg := filepath.Join(t.TempDir(), "up.eml")
	os.WriteFile(msg, []byte("From: curl@example.org\r\nSubject: uploaded\r\n\r\nuploaded by curl\r\n"), 0o600)
	runTool(t, nil, curl, append(auth, "-T", msg, base+"/Drafts")...)
	out = runTool(t, nil, curl, append(auth, base+"/Drafts;UID=1")...)
	if !strings.Contains(out, "uploaded by curl") {
		t.Errorf("curl upload then fetch:\n%s", out)
	}
	// A wrong password is refused.
	if err := runToolErr(curl, "--silent", "--user", "bob:wrong", base+"/"); err == nil {
		t.Error("curl with a wrong password succeeded")
	}
}
