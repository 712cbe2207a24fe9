// Package interop holds end-to-end tests that run the certmail binary and
// drive it with real third-party programs from Debian: Python's imaplib,
// curl, mbsync (isync) and swaks. It has no non-test code; the tests fail,
// rather than skip, when a program is missing (make test installs them).
package interop
