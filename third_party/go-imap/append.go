package imap

import (
	"time"
)

// AppendOptions contains options for the APPEND command.
type AppendOptions struct {
	Flags []Flag
	Time  time.Time
	// Binary is set by the server when the message came as a literal8
	// (RFC 3516 section 4.4): only then may it hold NUL bytes. (certmail
	// patch)
	Binary bool
}

// AppendData is the data returned by an APPEND command.
type AppendData struct {
	// requires UIDPLUS or IMAP4rev2
	UID         UID
	UIDValidity uint32
	// UIDs, if not empty, is written in APPENDUID instead of UID: the
	// UIDs of the messages of a MULTIAPPEND (RFC 3502, RFC 4315 section
	// 3). (certmail patch)
	UIDs UIDSet
}
