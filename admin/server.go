package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"certmail/netguard"
)

// SocketName is the admin socket's file name in the data directory.
const SocketName = "admin.sock"

// SocketPath returns the admin socket's path for a data directory.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Listen creates the admin socket at path, mode 0600. Call it only while
// holding the store (the data directory lock): any socket file already
// there is then a leftover of a server that died, and is removed.
func Listen(path string) (net.Listener, error) {
	if err := checkSocketPath(path); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale admin socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	// The socket can add users and read mail; only the owner may connect.
	// (The data directory is 0700 too, which closes the window before
	// the chmod.)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, nil
}

// maxSocketPath is the longest Unix socket path every platform takes
// (sun_path is 104 bytes on the BSDs and macOS, 108 on Linux).
const maxSocketPath = 103

func checkSocketPath(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("admin socket path %s is %d bytes, longer than a Unix socket allows (%d); use a shorter data directory path", path, len(path), maxSocketPath)
	}
	return nil
}

// ServerOptions configure a Server.
type ServerOptions struct {
	Logger *slog.Logger
	// MaxRequestBytes bounds one request line (a deliver carries the
	// message in base64); zero means 160 MiB.
	MaxRequestBytes int
}

// Server answers admin requests by running them on ops.
type Server struct {
	ops  Ops
	log  *slog.Logger
	max  int
	ctx  context.Context
	stop context.CancelFunc

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	// busy counts requests being run, so Shutdown can wait for them.
	busy sync.WaitGroup
}

// NewServer returns a server for ops (usually a Local around the server's
// store).
func NewServer(ops Ops, opts ServerOptions) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	max := opts.MaxRequestBytes
	if max <= 0 {
		max = 160 << 20
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{ops: ops, log: logger, max: max, ctx: ctx, stop: cancel, conns: make(map[net.Conn]struct{})}
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	// Accept errors (out of descriptors) pause the socket, they do not
	// end it: the admin socket is how an operator looks at a server in
	// trouble.
	ln = netguard.Guard(ln, netguard.Options{Name: "admin", Logger: s.log})
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("admin: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, closes the socket file, waits (until ctx
// ends) for running requests and then closes every connection.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	var err error
	if ln != nil {
		err = ln.Close() // also removes the socket file
	}
	done := make(chan struct{})
	go func() { s.busy.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("admin: waiting for requests: %w", ctx.Err()))
	}
	s.stop()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriter(c)
	for {
		line, err := readLine(r, s.max)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				s.reply(w, Response{Code: "badrequest", Error: fmt.Sprintf("request longer than %d bytes", s.max)})
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("admin: reading request", "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.reply(w, Response{Code: "tempfail", Error: "server is shutting down"})
			return
		}
		s.busy.Add(1)
		s.mu.Unlock()
		resp := s.handle(line)
		s.busy.Done()
		if err := s.reply(w, resp); err != nil {
			return
		}
	}
}

func (s *Server) reply(w *bufio.Writer, resp Response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	w.Write(b)
	w.WriteByte('\n')
	return w.Flush()
}

func (s *Server) handle(line []byte) Response {
	op, args, err := DecodeRequest(line)
	if err != nil {
		return Response{Code: errCode(err), Error: err.Error()}
	}
	fail := func(err error) Response {
		s.log.Info("admin: request failed", "op", op, "err", err)
		return Response{Code: errCode(err), Error: err.Error()}
	}
	ctx := s.ctx
	switch op {
	case OpUserAdd:
		a := args.(*UserArgs)
		if err := s.ops.AddUser(ctx, a.Name, a.Password); err != nil {
			return fail(err)
		}
		s.log.Info("admin: user added", "name", a.Name)
	case OpUserDel:
		a := args.(*UserArgs)
		if err := s.ops.DeleteUser(ctx, a.Name); err != nil {
			return fail(err)
		}
		s.log.Info("admin: user deleted", "name", a.Name)
	case OpUserPasswd:
		a := args.(*UserArgs)
		if err := s.ops.SetPassword(ctx, a.Name, a.Password); err != nil {
			return fail(err)
		}
		s.log.Info("admin: password changed", "name", a.Name)
	case OpUserList:
		names, err := s.ops.ListUsers(ctx)
		if err != nil {
			return fail(err)
		}
		if names == nil {
			names = []string{}
		}
		return okResult(names)
	case OpCall:
		a := args.(*CallArgs)
		var out json.RawMessage
		if err := s.ops.Call(ctx, a.Method, a.Params, &out); err != nil {
			return fail(err)
		}
		return Response{OK: true, Result: out}
	case OpDeliver:
		a := args.(*DeliverArgs)
		errs := s.ops.Deliver(ctx, a.To, a.Mailbox, a.Raw)
		res := make([]RcptResult, len(a.To))
		for i, t := range a.To {
			res[i] = RcptResult{Rcpt: t, OK: errs[i] == nil}
			if errs[i] != nil {
				res[i].Code = errCode(errs[i])
				res[i].Error = errs[i].Error()
			}
		}
		return okResult(res)
	}
	return Response{OK: true}
}

func okResult(v any) Response {
	b, err := json.Marshal(v)
	if err != nil {
		return Response{Code: "internal", Error: err.Error()}
	}
	return Response{OK: true, Result: b}
}

var errLineTooLong = errors.New("line too long")

// readLine reads one '\n'-terminated line of at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}
