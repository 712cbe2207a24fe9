// Command certmail is the one binary: `certmail serve` runs the store,
// IMAP, LMTP, HTTP and the admin socket in one process on one data
// directory; the user, deliver and config commands operate on that
// directory, through the running server's admin socket when there is one.
//
// It owns parsing the command line and printing, nothing more: a node is
// assembled in package node, recipient rules live in delivery, account
// operations in admin, settings in config.
package main
