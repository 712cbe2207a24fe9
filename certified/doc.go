// Package certified runs the life of a certified item (DESIGN.md): it
// posts an item (holds M, puts a notification stub in the recipient's
// INBOX, records the certificate of posting), takes the recipient's
// decision (a COD signed with the gateway-held custody key when a stub is
// moved to Acknowledge, or a COD signed by the recipient's own key and
// appended there; a refusal through Refuse), releases M against a valid COD,
// and settles items whose deadline passes. Every transition is one store
// transaction carrying its evidence record.
//
// It also owns the recipients' signing keys: the custody key sealed under
// the account password and the public keys recipients register.
//
// It speaks neither IMAP nor SMTP: imapsrv calls it through its Hooks,
// delivery through its Certifier, and notices go to the notifier outbox.
package certified
