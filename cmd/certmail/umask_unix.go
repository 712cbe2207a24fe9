//go:build unix

package main

import "syscall"

// privateFiles makes everything the process creates private to its
// owner: Badger's tables and value logs (which it creates 0666), the
// admin socket, keys, backups and exports come out 0600, directories
// 0700, whatever umask the shell or service manager left. Only what is
// meant to be handed out is opened up explicitly (tls selfsigned's
// cert.pem).
func privateFiles() { syscall.Umask(0o077) }
