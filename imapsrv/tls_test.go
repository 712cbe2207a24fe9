package imapsrv_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"certmail/imapsrv"
)

func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// remoteListener makes every connection look as if it came from a
// non-loopback address, to test what remote clients are allowed.
type remoteListener struct{ net.Listener }

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c}, nil
}

type remoteConn struct{ net.Conn }

func (remoteConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
}

// serveExtra starts another accept loop of ts's server and returns its
// address.
func serveExtra(t *testing.T, ts *testServer, implicitTLS bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var rl net.Listener = remoteListener{ln}
	go func() {
		if implicitTLS {
			ts.srv.ServeTLS(rl)
		} else {
			ts.srv.Serve(rl)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func rawDial(t *testing.T, conn net.Conn) *rawClient {
	t.Helper()
	rc := &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
	t.Cleanup(func() { conn.Close() })
	rc.Greeting = rc.readLine()
	return rc
}

func TestTLSAndRemoteAuth(t *testing.T) {
	cfg := testTLSConfig(t)
	ts := newTestServer(t, func(o *imapsrv.Options) { o.TLSConfig = cfg })
	ts.addUser("alice")
	plainAddr := serveExtra(t, ts, false)
	tlsAddr := serveExtra(t, ts, true)

	// A remote client without TLS: no password authentication.
	conn, err := net.Dial("tcp", plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	rc := rawDial(t, conn)
	caps := capsOf(t, rc.ok("CAPABILITY"))
	if !caps["STARTTLS"] || !caps["LOGINDISABLED"] || caps["AUTH=PLAIN"] {
		t.Errorf("remote plain capabilities: %v", keys(caps))
	}
	if _, st := rc.cmd(`LOGIN alice "secret pw"`); strings.HasPrefix(st, "OK") {
		t.Fatalf("LOGIN without TLS from a remote address succeeded")
	}
	if _, st := rc.cmd("AUTHENTICATE PLAIN " + b64("\x00alice\x00"+testPassword)); strings.HasPrefix(st, "OK") {
		t.Fatalf("AUTHENTICATE without TLS from a remote address succeeded")
	}
	// STARTTLS, then it may.
	rc.ok("STARTTLS")
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	rc.conn, rc.br = tc, bufio.NewReader(tc)
	caps = capsOf(t, rc.ok("CAPABILITY"))
	if caps["STARTTLS"] || caps["LOGINDISABLED"] || !caps["AUTH=PLAIN"] {
		t.Errorf("capabilities after STARTTLS: %v", keys(caps))
	}
	rc.ok(`LOGIN alice "secret pw"`)
	rc.ok(`SELECT INBOX`)

	// Implicit TLS from a remote address.
	tconn, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	rc2 := rawDial(t, tconn)
	caps = capsOf(t, rc2.ok("CAPABILITY"))
	if caps["STARTTLS"] || caps["LOGINDISABLED"] || !caps["AUTH=PLAIN"] {
		t.Errorf("implicit TLS capabilities: %v", keys(caps))
	}
	rc2.ok("AUTHENTICATE PLAIN " + b64("\x00alice\x00"+testPassword))
	rc2.ok(`SELECT INBOX`)

	// Loopback without TLS may authenticate, and is offered STARTTLS.
	rc3 := ts.raw()
	caps = capsOf(t, rc3.ok("CAPABILITY"))
	if !caps["STARTTLS"] || caps["LOGINDISABLED"] || !caps["AUTH=PLAIN"] {
		t.Errorf("loopback capabilities: %v", keys(caps))
	}
	rc3.ok(`LOGIN alice "secret pw"`)
}

func TestInsecureAuth(t *testing.T) {
	ts := newTestServer(t, func(o *imapsrv.Options) { o.InsecureAuth = true })
	ts.addUser("alice")
	conn, err := net.Dial("tcp", serveExtra(t, ts, false))
	if err != nil {
		t.Fatal(err)
	}
	rc := rawDial(t, conn)
	caps := capsOf(t, rc.ok("CAPABILITY"))
	if caps["LOGINDISABLED"] || !caps["AUTH=PLAIN"] || caps["STARTTLS"] {
		t.Errorf("InsecureAuth capabilities: %v", keys(caps))
	}
	rc.ok(`LOGIN alice "secret pw"`)
}
