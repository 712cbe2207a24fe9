// Package node assembles a certmail node: it opens the store, builds the
// services on it (certified mail, forwarding, the notice outbox, the
// evidence log's checkpoints, login guard), binds the listeners (IMAP,
// LMTP, HTTP with the sender API, autoconfig and /healthz, metrics, the
// admin socket), runs them, and shuts them down in order. It also gives
// the CLI its way to the store (Connect): the running node's admin socket,
// or the store opened directly.
//
// cmd/certmail holds the flags and the printing; every decision about how
// a node is put together is made here, once, for serve and for the
// commands that open the store without a server.
package node
