package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"certmail/certified"
	"certmail/delivery"
	"certmail/mailbox"
)

// Ops are the administrative operations, whether run locally or through
// the server.
type Ops interface {
	AddUser(ctx context.Context, name, password string) error
	DeleteUser(ctx context.Context, name string) error
	SetPassword(ctx context.Context, name, password string) error
	ListUsers(ctx context.Context) ([]string, error)
	// Deliver stores raw for each recipient and returns one error per
	// recipient (see delivery.Deliverer.Deliver); nil means durable.
	Deliver(ctx context.Context, to []string, mailbox string, raw []byte) []error
	// Call runs an extension method (see Methods) with params, decoding
	// its result into result (if not nil).
	Call(ctx context.Context, method string, params, result any) error
	// Close releases the connection or the store.
	Close() error
}

// ErrBadRequest is a request the server cannot make sense of.
var ErrBadRequest = errors.New("bad request")

// ErrLocked means the data directory is held by another process that does
// not answer on the admin socket.
var ErrLocked = errors.New("data directory is locked by another process")

// ErrNoServer means no server answers on the socket.
var ErrNoServer = errors.New("no server answers on the admin socket")

// NewAccountMailboxes are the mailboxes a new account gets: the RFC 6154
// set plus the two that let any IMAP client answer a certified item
// (Acknowledge and Refuse; the certified package owns their names).
func NewAccountMailboxes() []mailbox.NewMailbox {
	return append(mailbox.DefaultMailboxes(), certified.Mailboxes()...)
}

// Local runs operations on an open store.
type Local struct {
	Store     *mailbox.Store
	Deliverer *delivery.Deliverer
	// Methods are the extension methods this store serves.
	Methods Methods
	// closeFn, when set, is what Close does (OpenLocal's store).
	closeFn func() error
}

var _ Ops = (*Local)(nil)

func (l *Local) AddUser(ctx context.Context, name, password string) error {
	if password == "" {
		return fmt.Errorf("account %q: %w: empty password", name, ErrBadRequest)
	}
	// The custody key is made in the account's own transaction: no
	// account exists without the key its owner signs CODs with.
	if err := l.Store.CreateAccount(name, password, NewAccountMailboxes(), func(tx *mailbox.Tx, acct string) error {
		return certified.ProvisionCustody(tx, acct, password)
	}); err != nil {
		return err
	}
	// An account is something an operator was told exists; make it so.
	return l.sync()
}

func (l *Local) DeleteUser(ctx context.Context, name string) error {
	if err := l.Store.DeleteAccount(name); err != nil {
		return err
	}
	return l.sync()
}

func (l *Local) SetPassword(ctx context.Context, name, password string) error {
	if password == "" {
		return fmt.Errorf("account %q: %w: empty password", name, ErrBadRequest)
	}
	// An operator does not know the old password: the old custody key is
	// retired (kept for verifying) and a new one sealed under the new
	// password, so the operator never signs with the owner's old key.
	acct, _ := mailbox.NormalizeAccount(name)
	if err := l.Store.SetPassword(name, password, func(tx *mailbox.Tx) error {
		return certified.ChangePassword(tx, acct, "", password)
	}); err != nil {
		return err
	}
	return l.sync()
}

func (l *Local) ListUsers(ctx context.Context) ([]string, error) {
	return l.Store.ListAccounts()
}

func (l *Local) Deliver(ctx context.Context, to []string, mbox string, raw []byte) []error {
	return l.Deliverer.Deliver(ctx, to, mbox, raw)
}

// Close closes what OpenLocal opened; a Local built around a server's
// store leaves it alone.
func (l *Local) Close() error {
	if l.closeFn == nil {
		return nil
	}
	return l.closeFn()
}

func (l *Local) sync() error {
	if err := l.Store.Sync(); err != nil {
		return fmt.Errorf("syncing store: %w", err)
	}
	return nil
}

// OpenLocal opens the store in storeOpts.Dir for a command run while no
// server is running. It fails with ErrLocked when another process holds
// the directory. setup, if not nil, makes the delivery options once the
// store is open (the certified-mail service needs the store).
func OpenLocal(storeOpts mailbox.Options, delOpts delivery.Options, setup ...func(*mailbox.Store, *delivery.Options) error) (*Local, error) {
	st, err := mailbox.Open(storeOpts)
	if err != nil {
		// Badger reports the lock only in its message (not wrapped).
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("%w: %s", ErrLocked, storeOpts.Dir)
		}
		return nil, err
	}
	for _, fn := range setup {
		if err := fn(st, &delOpts); err != nil {
			st.Close()
			return nil, err
		}
	}
	d := delivery.NewDeliverer(st, delOpts)
	return &Local{Store: st, Deliverer: d, closeFn: func() error {
		derr := d.Close(context.Background())
		serr := st.Sync()
		cerr := st.Close()
		return errors.Join(derr, serr, cerr)
	}}, nil
}

// error codes on the wire, so that a Client can give back errors that
// errors.Is recognises.
var codes = []struct {
	code string
	err  error
}{
	{"nouser", delivery.ErrNoUser},
	{"nouser", mailbox.ErrNoAccount},
	{"exists", mailbox.ErrAccountExists},
	{"badname", mailbox.ErrBadName},
	{"domain", delivery.ErrDomain},
	{"badaddress", delivery.ErrBadAddress},
	{"toolarge", delivery.ErrTooLarge},
	{"malformed", delivery.ErrMalformed},
	{"overquota", mailbox.ErrOverQuota},
	// Before tempfail, which a full disk also is.
	{"diskfull", mailbox.ErrDiskFull},
	{"tempfail", delivery.ErrTemporary},
	{"badrequest", ErrBadRequest},
	// Only for the client's Unwrap (errCode matched tempfail above): a
	// full disk is temporary too.
	{"diskfull", delivery.ErrTemporary},
}

func errCode(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

// RemoteError is an error the server reported.
type RemoteError struct {
	Code string
	Msg  string
}

func (e *RemoteError) Error() string { return e.Msg }

// Unwrap gives the sentinel errors for the code, so errors.Is works
// across the socket.
func (e *RemoteError) Unwrap() []error {
	var out []error
	for _, c := range codes {
		if c.code == e.Code {
			out = append(out, c.err)
		}
	}
	return out
}

func remoteErr(code, msg string) error {
	if msg == "" {
		msg = "error " + code
	}
	return &RemoteError{Code: code, Msg: msg}
}
