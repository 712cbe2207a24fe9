// Package codclient is the recipient's side of certified mail: it finds
// certified-item stubs over IMAP, reads the COD request each carries, signs
// a certificate of delivery (or a refusal) with a key the recipient holds,
// and hands it in by APPEND to the Acknowledge (or Refuse) mailbox. It is
// what `certmail sign` runs, and works against any certmail gateway.
package codclient
