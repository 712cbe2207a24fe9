package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRemoteClientNeedsTLS runs the real server and Python's imaplib in a
// private network namespace (unshare --net) whose loopback interface also
// holds 192.0.2.10 (TEST-NET-1): connections to that address come from a
// non-loopback address, as a remote client's do, and no packet leaves the
// namespace. Without TLS the server advertises LOGINDISABLED and refuses
// LOGIN; after STARTTLS, or over implicit TLS, LOGIN works; with
// allow_insecure_auth it works without TLS, and the connection limit
// counts the address.
func TestRemoteClientNeedsTLS(t *testing.T) {
	unshare := findProgram(t, "unshare")
	ip := findProgram(t, "ip")
	py := requireTool(t, "python3")
	if os.Geteuid() != 0 {
		t.Fatal("a private network namespace needs root (CI runs as root)")
	}
	const host = "192.0.2.10"
	data := filepath.Join(t.TempDir(), "data")
	s := &server{t: t, data: data}
	s.addUser("alice", "remote-pw")
	cert, key := selfSignedCert(t, host)
	script, _ := filepath.Abs(filepath.Join("testdata", "remote_auth.py"))
	cmd := exec.Command(unshare, "--net", "sh", "-ec",
		ip+` link set lo up; `+ip+` addr add `+host+`/32 dev lo; exec "$@"`, "sh",
		py, script, certmailBin, data, cert, key, host)
	out, err := runWithTimeout(cmd, 90*time.Second)
	if err != nil || !strings.Contains(out, "PASS") {
		t.Fatalf("remote_auth.py: %v\n%s", err, out)
	}
	t.Log(out)
}
