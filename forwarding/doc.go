// Package forwarding owns auto-forward of unread mail and unread
// monitoring, after the X.400 message store's "auto-forward on timeout"
// and alternate recipients: policies (per account and mailbox, from the
// operator, the owner or the config file), the durable unread timers set
// when a message arrives and cancelled when it is read, the forward itself
// (a Resent-* copy for ordinary mail, the stub for a certified item),
// operator actions (forward and view by hand, recorded), unread reports,
// metrics and alerts.
//
// Every forward happens exactly once: the timer is removed in the same
// store transaction that delivers the copy (or queues it in the outbox), so
// a crash leaves both undone or both done.
package forwarding
