// Package admin owns operating on a data directory from the command line
// while `certmail serve` may be running. Badger lets one process open a
// directory, so the server listens on a Unix socket in the data directory
// (admin.sock, mode 0600) speaking JSON lines, and every CLI command first
// tries that socket; when no server answers, it opens the store itself.
//
// The operations (Ops) are the same either way: Local runs them on an open
// store, Client sends them to a server, and Server answers a Client by
// running them on its Local.
//
// Wire format: one JSON object per line each way.
//
//	→ {"op":"user.add","args":{"name":"alice","password":"secret"}}
//	← {"ok":true}
//	→ {"op":"deliver","args":{"to":["alice"],"mailbox":"INBOX","raw":"<base64>"}}
//	← {"ok":true,"result":[{"rcpt":"alice","ok":true}]}
//	← {"ok":false,"code":"nouser","error":"account \"bob\": no such account"}
package admin
