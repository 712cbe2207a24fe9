// Package netguard keeps certmail's listeners serving when clients or the
// system misbehave: one accept loop policy for every listener (IMAP, IMAPS,
// LMTP, HTTP, admin), caps on the connections open at once (in all and per
// client address), and the process's descriptor limit.
//
// An accept error never stops a listener: running out of descriptors
// (EMFILE, ENFILE) or of kernel buffers is a moment to wait out, as
// net/http does for temporary errors, not a reason to take the whole
// server down. Only closing the listener ends Accept.
package netguard
