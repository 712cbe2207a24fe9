// Package interop holds end-to-end tests that run the certmail binary and
// drive it with real third-party programs from Debian: Thunderbird
// (headless, remote controlled through Marionette), Python's imaplib,
// curl, mbsync (isync), swaks, neomutt, Postfix and openssl. It has no
// non-test code; the tests fail, rather than skip, when a program is
// missing (make test installs them).
package interop
