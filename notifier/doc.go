// Package notifier writes and sends what certmail tells people: the stub a
// recipient sees in place of a held certified item, and notices to senders
// and operators (certificates, reports of delivery or non-delivery), by
// SMTP relay or webhook.
//
// Notices go through a durable outbox kept in the store: a caller enqueues
// a notice inside the same transaction as the event it reports, so the
// notice is sent if and only if the event commits. Delivery is at least
// once; a notice's ID is its Message-ID (or webhook delivery ID) so that
// receivers can drop repeats.
//
// The package decides no policy: what a stub reveals of the sender and
// subject, who is told what, and when, are the caller's decisions, passed
// in already made.
package notifier
