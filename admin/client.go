package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"certmail/delivery"
)

// Client sends operations to a running server over its admin socket.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

var _ Ops = (*Client)(nil)

// Dial connects to the admin socket at path. It fails with ErrNoServer
// when there is no socket or nobody listens on it.
func Dial(ctx context.Context, path string) (*Client, error) {
	if err := checkSocketPath(path); err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w: %s", ErrNoServer, path)
		}
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return &Client{conn: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// call sends one request and decodes its result into result (if not nil).
func (c *Client) call(ctx context.Context, op string, args, result any) error {
	req := Request{Op: op}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", op, err)
		}
		req.Args = b
	}
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", op, err)
	}
	line = append(line, '\n')

	c.mu.Lock()
	defer c.mu.Unlock()
	deadline, _ := ctx.Deadline()
	c.conn.SetDeadline(deadline)
	// Cancelling ctx unblocks the read by expiring the deadline.
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.conn.Write(line); err != nil {
		return fmt.Errorf("admin %s: sending: %w", op, err)
	}
	respLine, err := readLine(c.r, 1<<20)
	if err != nil {
		return fmt.Errorf("admin %s: reading reply: %w", op, err)
	}
	var resp Response
	if err := json.Unmarshal(respLine, &resp); err != nil {
		return fmt.Errorf("admin %s: decoding reply: %w", op, err)
	}
	if !resp.OK {
		return remoteErr(resp.Code, resp.Error)
	}
	if result != nil {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("admin %s: decoding result: %w", op, err)
		}
	}
	return nil
}

func (c *Client) AddUser(ctx context.Context, name, password string) error {
	return c.call(ctx, OpUserAdd, UserArgs{Name: name, Password: password}, nil)
}

func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.call(ctx, OpUserDel, UserArgs{Name: name}, nil)
}

func (c *Client) SetPassword(ctx context.Context, name, password string) error {
	return c.call(ctx, OpUserPasswd, UserArgs{Name: name, Password: password}, nil)
}

func (c *Client) ListUsers(ctx context.Context) ([]string, error) {
	var names []string
	if err := c.call(ctx, OpUserList, nil, &names); err != nil {
		return nil, err
	}
	return names, nil
}

// Deliver sends the message to the server. When the exchange itself
// fails, the outcome is unknown and every recipient gets a temporary
// error: the MTA retries, which at worst duplicates, never loses.
func (c *Client) Deliver(ctx context.Context, to []string, mbox string, raw []byte) []error {
	errs := make([]error, len(to))
	var res []RcptResult
	err := c.call(ctx, OpDeliver, DeliverArgs{To: to, Mailbox: mbox, Raw: raw}, &res)
	if err == nil && len(res) != len(to) {
		err = fmt.Errorf("admin deliver: %d results for %d recipients", len(res), len(to))
	}
	if err != nil {
		var re *RemoteError
		if !errors.As(err, &re) {
			err = fmt.Errorf("%w: %w", delivery.ErrTemporary, err)
		}
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	for i, r := range res {
		if !r.OK {
			errs[i] = remoteErr(r.Code, r.Error)
		}
	}
	return errs
}

// ConnectOptions say how to reach a data directory's store.
type ConnectOptions struct {
	// Socket is the admin socket path (SocketPath(dataDir)).
	Socket string
	// OpenLocal opens the store directly, for when no server runs.
	OpenLocal func() (*Local, error)
	// LockWait is how long to keep trying the socket when the store is
	// locked (a server starting up has the lock before its socket); zero
	// means 3 seconds.
	LockWait time.Duration
}

// Connect returns Ops for a data directory: through the running server
// if one answers on the socket, else on the store opened directly. If the
// store is locked and no server answers, it fails with ErrLocked.
func Connect(ctx context.Context, opts ConnectOptions) (Ops, error) {
	c, err := Dial(ctx, opts.Socket)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, ErrNoServer) {
		return nil, err
	}
	l, lerr := opts.OpenLocal()
	if lerr == nil {
		return l, nil
	}
	if !errors.Is(lerr, ErrLocked) {
		return nil, lerr
	}
	wait := opts.LockWait
	if wait == 0 {
		wait = 3 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if c, err := Dial(ctx, opts.Socket); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w, and its admin socket %s does not answer (is a certmail server starting or stopping? otherwise another program holds the directory)", lerr, opts.Socket)
}
