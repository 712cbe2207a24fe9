package interop

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// selfSignedCert runs `certmail tls selfsigned` into a new directory and
// returns the certificate and key files.
func selfSignedCert(t *testing.T, hosts string) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	out := certmailOut(t, "tls", "selfsigned", "--host", hosts, "--out", dir)
	if !strings.Contains(out, "cert.pem") {
		t.Fatalf("tls selfsigned: %s", out)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	return certFile, keyFile
}

func certDER(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", file)
	}
	return blk.Bytes
}

// startTLSServer starts a server with a self-signed certificate for
// 127.0.0.1 and localhost, on both the STARTTLS port and an implicit-TLS
// one, and returns it with the certificate file and the imaps address.
func startTLSServer(t *testing.T) (s *server, certFile, keyFile, imaps string) {
	t.Helper()
	certFile, keyFile = selfSignedCert(t, "localhost,127.0.0.1,::1")
	imaps = freeAddr(t)
	s = startServer(t, "--tls-cert", certFile, "--tls-key", keyFile, "--imaps", imaps)
	s.waitListening(imaps)
	return s, certFile, keyFile, imaps
}

// TestTLSWithRealClients: Python's imaplib over implicit TLS and STARTTLS,
// curl over imaps://, and openssl s_client all verify the self-signed
// certificate as their CA and read mail.
func TestTLSWithRealClients(t *testing.T) {
	py := requireTool(t, "python3")
	curl := requireTool(t, "curl")
	openssl := requireTool(t, "openssl")
	s, certFile, _, imaps := startTLSServer(t)
	s.addUser("alice", "tls-pw")
	s.deliverSwaks("alice@example.org", "over tls", "a body read over TLS")

	host, port, _ := net.SplitHostPort(imaps)
	_, plainPort, _ := net.SplitHostPort(s.imap)
	script := `
import imaplib, ssl, sys
ca, host, port, plain = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)   # verifies the chain and the name (127.0.0.1)
m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
m.login("alice", "tls-pw")
m.select("INBOX")
typ, data = m.fetch("1", "(BODY.PEEK[TEXT])")
assert typ == "OK" and b"a body read over TLS" in data[0][1], data
print("IMAPS", m.sock.version())
m.logout()
m = imaplib.IMAP4(host, plain)
assert "STARTTLS" in m.capabilities, m.capabilities
m.starttls(ssl_context=ctx)
m.login("alice", "tls-pw")
typ, data = m.status("INBOX", "(MESSAGES)")
assert typ == "OK" and b"MESSAGES 1" in data[0], data
print("STARTTLS", m.sock.version())
m.logout()
# A client that does not trust the certificate refuses it.
try:
    imaplib.IMAP4_SSL(host, port, ssl_context=ssl.create_default_context())
    print("UNTRUSTED ACCEPTED")
except ssl.SSLCertVerificationError:
    print("UNTRUSTED REFUSED")
`
	out := runTool(t, nil, py, "-c", script, certFile, host, port, plainPort)
	for _, want := range []string{"IMAPS TLSv1.3", "STARTTLS TLSv1.3", "UNTRUSTED REFUSED"} {
		if !strings.Contains(out, want) {
			t.Errorf("imaplib: want %q in:\n%s", want, out)
		}
	}

	out = runTool(t, nil, curl, "--silent", "--show-error", "--cacert", certFile, "--user", "alice:tls-pw",
		"imaps://"+imaps+"/INBOX;UID=1")
	if !strings.Contains(out, "a body read over TLS") {
		t.Errorf("curl imaps://:\n%s", out)
	}
	// curl with STARTTLS required on the plain port.
	out = runTool(t, nil, curl, "--silent", "--show-error", "--ssl-reqd", "--cacert", certFile, "--user", "alice:tls-pw",
		"imap://"+s.imap+"/INBOX;UID=1")
	if !strings.Contains(out, "a body read over TLS") {
		t.Errorf("curl imap:// --ssl-reqd:\n%s", out)
	}

	for _, args := range [][]string{
		{"s_client", "-connect", imaps, "-CAfile", certFile, "-verify_return_error", "-verify_ip", "127.0.0.1"},
		{"s_client", "-connect", s.imap, "-starttls", "imap", "-CAfile", certFile, "-verify_return_error"},
	} {
		cmd := exec.Command(openssl, args...)
		cmd.Stdin = strings.NewReader("a1 LOGOUT\r\n")
		b, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(b), "Verify return code: 0 (ok)") {
			t.Errorf("openssl %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
}

// TestTLSReloadOnSIGHUP: a new certificate is picked up on SIGHUP by new
// connections, while a session opened before keeps working.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	s, certFile, keyFile, imaps := startTLSServer(t)
	s.addUser("alice", "tls-pw")
	oldDER := certDER(t, certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mustRead(t, certFile))

	// A logged-in session over the old certificate, idling.
	conn, err := tls.Dial("tcp", imaps, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	expect := func(prefix string) string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading (want %q): %v", prefix, err)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		}
	}
	expect("* OK")
	conn.Write([]byte("a1 LOGIN alice tls-pw\r\na2 SELECT INBOX\r\n"))
	expect("a2 OK")
	conn.Write([]byte("a3 IDLE\r\n"))
	expect("+ ")

	// Replace the files with a new certificate and reload.
	newCert, newKey := selfSignedCert(t, "localhost,127.0.0.1")
	for _, p := range [][2]string{{newCert, certFile}, {newKey, keyFile}} {
		if err := os.WriteFile(p[1], mustRead(t, p[0]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the reload log line", 10*time.Second, func() bool {
		return strings.Contains(s.logText(), "TLS certificate reloaded")
	})

	// New connections get the new certificate.
	c2, err := tls.Dial("tcp", imaps, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	got := c2.ConnectionState().PeerCertificates[0].Raw
	c2.Close()
	if !bytes.Equal(got, certDER(t, newCert)) || bytes.Equal(got, oldDER) {
		t.Fatal("a new connection after SIGHUP did not get the new certificate")
	}

	// The old session was not dropped: it sees a delivery during IDLE and
	// goes on answering.
	s.deliverSwaks("alice@example.org", "after reload", "delivered after the reload")
	expect("* 1 EXISTS")
	conn.Write([]byte("DONE\r\n"))
	expect("a3 OK")
	conn.Write([]byte("a4 FETCH 1 (BODY.PEEK[TEXT])\r\n"))
	expect("a4 OK")

	// A bad certificate file is refused and the old one kept.
	os.WriteFile(certFile, []byte("not a certificate"), 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the reload error", 10*time.Second, func() bool {
		return strings.Contains(s.logText(), "keeping the old one")
	})
	c3, err := tls.Dial("tcp", imaps, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
	c3.Close()
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
