package imapsrv

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// socketOf finds the TCP socket under every layer a session's connection
// can have: implicit TLS under the guard, STARTTLS over it.
func TestSocketOfAndPeerGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	for name, c := range map[string]net.Conn{
		"plain":    newLiteralGuard(newCoalescingConn(server)),
		"imaps":    newLiteralGuard(newCoalescingConn(tls.Server(server, &tls.Config{}))),
		"starttls": tls.Server(newLiteralGuard(newCoalescingConn(server)), &tls.Config{}),
	} {
		if got := socketOf(c); got != server.(*net.TCPConn) {
			t.Errorf("%s: socketOf = %v, want the TCP connection", name, got)
		}
	}
	sc := socketOf(server)
	if peerGone(sc) {
		t.Fatal("peerGone on an open connection")
	}
	client.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !peerGone(sc) {
		if time.Now().After(deadline) {
			t.Fatal("peerGone does not see the client's close")
		}
		time.Sleep(10 * time.Millisecond)
	}
	server.Close()
	if !peerGone(sc) {
		t.Error("peerGone on a closed socket")
	}
}
