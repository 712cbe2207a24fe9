// Package delivery owns getting mail into the store from outside: the
// Deliverer, which resolves recipients, stores one message for many
// recipients in one transaction and makes it durable before anyone is told
// it was accepted; and the LMTP server (go-smtp in LMTP mode) that an MTA
// talks to, giving one status per recipient. `certmail deliver` and the
// admin socket use the same Deliverer, so every path in has the same
// recipient rules, size limit and durability.
//
// Certified items (the Certified-Delivery: header) will branch off per
// recipient in Deliverer.place; see the Certifier hook.
package delivery
