package imap

// StoreOptions contains options for the STORE command.
type StoreOptions struct {
	UnchangedSince uint64 // requires CONDSTORE

	// certmail patch: HasUnchangedSince says the command carried
	// UNCHANGEDSINCE, which matters for UNCHANGEDSINCE 0: that STORE fails
	// for every message (RFC 7162 3.1.3), where no modifier stores. The
	// server sets it; the client sends UNCHANGEDSINCE when it is set or
	// UnchangedSince is not zero.
	HasUnchangedSince bool
}

// StoreFlagsOp is a flag operation: set, add or delete.
type StoreFlagsOp int

const (
	StoreFlagsSet StoreFlagsOp = iota
	StoreFlagsAdd
	StoreFlagsDel
)

// StoreFlags alters message flags.
type StoreFlags struct {
	Op     StoreFlagsOp
	Silent bool
	Flags  []Flag
}
