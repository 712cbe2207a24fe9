// Package imapsrv serves the mailbox store over IMAP with go-imap v2's
// imapserver: sessions and authentication, TLS, and the per-mailbox
// trackers that carry every committed change to every session that has the
// mailbox selected, in commit order. It reaches the store only through the
// mailbox package's API, never Badger directly.
package imapsrv
