package mailbox

import (
	"errors"

	"certmail/kv/badgerkv"
)

var (
	ErrNoAccount        = errors.New("no such account")
	ErrAccountExists    = errors.New("account already exists")
	ErrNoMailbox        = errors.New("no such mailbox")
	ErrMailboxExists    = errors.New("mailbox already exists")
	ErrNoMessage        = errors.New("no such message")
	ErrBadName          = errors.New("invalid name")
	ErrAuthFailed       = errors.New("authentication failed")
	ErrProtectedMailbox = errors.New("mailbox cannot be deleted or renamed")
	ErrTooManyMailboxes = errors.New("too many mailboxes")
	ErrClosed           = errors.New("store is closed")
	// ErrWrongKey: the store was written with another encryption key, or
	// with none, or is encrypted and no key was given.
	ErrWrongKey = badgerkv.ErrWrongKey
	// ErrRefused wraps refusals a user should read: a policy or a hook
	// declined the operation, and the message says why.
	ErrRefused = errors.New("refused")
)
