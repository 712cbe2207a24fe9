package main

import (
	"fmt"
	"net"
)

// serveForever prints each server's addresses, process and the imaptest
// stress command for it, then waits: the signal handler in run stops the
// servers. The servers are set up exactly as for the workloads (same
// Dovecot configuration and fsync settings), so that a tool run against
// them compares the same two things.
func (b *bench) serveForever() {
	for _, s := range b.servers {
		fmt.Printf("%s: imap %s lmtp %s pid %d\n", s.name, s.imap, s.lmtp, s.pid())
		host, port, _ := net.SplitHostPort(s.imap)
		fmt.Printf("  imaptest host=%s port=%s user=u%%d pass=%s users=%d clients=%d secs=30 mbox=FILE logout=0\n",
			host, port, password, b.o.serveUsers, b.o.serveUsers)
	}
	fmt.Println("serving until interrupted (SIGINT or SIGTERM)")
	select {}
}
