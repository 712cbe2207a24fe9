package imapsrv

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// peerGone reports whether the client has closed its side of the TCP
// connection (FIN or RST received: any state but ESTABLISHED), or the
// socket is closed. The TCP state, not a peek at the data, so that a
// client that sends one more command and hangs up is seen too.
func peerGone(c syscall.Conn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return true
	}
	var state uint8
	var serr error
	if err := rc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if serr == nil {
			state = info.State
		}
	}); err != nil {
		return true // closed
	}
	if serr != nil {
		return false // not TCP (a Unix socket): cannot tell
	}
	const tcpEstablished = 1 // include/net/tcp_states.h
	return state != tcpEstablished
}
