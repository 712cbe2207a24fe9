package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"certmail/delivery"
	"certmail/mailbox"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func storeOpts(dir string) mailbox.Options {
	return mailbox.Options{Dir: dir, GCInterval: -1, Logger: quiet()}
}

// startServer opens a store in a temp dir and serves it on the admin
// socket, as `certmail serve` does.
func startServer(t *testing.T) (dir string, st *mailbox.Store) {
	t.Helper()
	dir = t.TempDir()
	st, err := mailbox.Open(storeOpts(dir))
	if err != nil {
		t.Fatal(err)
	}
	d := delivery.NewDeliverer(st, delivery.Options{Logger: quiet(), MaxMessageBytes: 1 << 20})
	srv := NewServer(&Local{Store: st, Deliverer: d}, ServerOptions{Logger: quiet(), MaxRequestBytes: 2 << 20})
	ln, err := Listen(SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
		d.Close(ctx)
		st.Close()
	})
	return dir, st
}

func TestSocketRoundTrips(t *testing.T) {
	dir, st := startServer(t)
	fi, err := os.Stat(SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v", fi.Mode())
	}
	ctx := context.Background()
	c, err := Dial(ctx, SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	if err := c.AddUser(ctx, "Alice", "secret"); err != nil {
		t.Fatal(err)
	}
	if err := c.AddUser(ctx, "alice", "x"); !errors.Is(err, mailbox.ErrAccountExists) {
		t.Fatalf("duplicate add: %v", err)
	}
	if err := c.AddUser(ctx, "bad name", "x"); !errors.Is(err, mailbox.ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	if err := c.AddUser(ctx, "bob", "pw"); err != nil {
		t.Fatal(err)
	}
	names, err := c.ListUsers(ctx)
	if err != nil || !slices.Equal(names, []string{"alice", "bob"}) {
		t.Fatalf("list: %v %v", names, err)
	}
	boxes, err := st.ListMailboxes("alice")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range boxes {
		if !b.Subscribed {
			t.Errorf("%s not subscribed", b.Name)
		}
		got = append(got, b.Name)
	}
	want := []string{"Acknowledge", "Archive", "Drafts", "INBOX", "Junk", "Refuse", "Sent", "Trash"}
	if !slices.Equal(got, want) {
		t.Fatalf("mailboxes %v, want %v", got, want)
	}

	if err := c.SetPassword(ctx, "ALICE", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Authenticate("alice", "new"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if err := c.SetPassword(ctx, "nobody", "x"); !errors.Is(err, mailbox.ErrNoAccount) {
		t.Fatalf("passwd unknown: %v", err)
	}

	msg := []byte("Subject: via socket\r\n\r\n\x00binary\xff\r\n")
	errs := c.Deliver(ctx, []string{"alice", "nobody", "bob@example.org"}, "", msg)
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("deliver: %v", errs)
	}
	if !errors.Is(errs[1], delivery.ErrNoUser) {
		t.Fatalf("unknown recipient: %v", errs[1])
	}
	mb, _ := st.Mailbox("alice", "INBOX")
	msgs, _ := st.Messages("alice", mb.ID)
	if len(msgs) != 1 {
		t.Fatalf("alice has %d messages", len(msgs))
	}
	if raw, _ := st.Raw(msgs[0].Blob); !bytes.Equal(raw, msg) {
		t.Fatalf("stored %q", raw)
	}
	if errs := c.Deliver(ctx, []string{"alice"}, "", make([]byte, 1<<20+1)); !errors.Is(errs[0], delivery.ErrTooLarge) {
		t.Fatalf("too large: %v", errs[0])
	}

	if err := c.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteUser(ctx, "bob"); !errors.Is(err, mailbox.ErrNoAccount) {
		t.Fatalf("delete twice: %v", err)
	}
	if names, _ := c.ListUsers(ctx); !slices.Equal(names, []string{"alice"}) {
		t.Fatalf("after delete: %v", names)
	}
}

func TestSocketBadRequests(t *testing.T) {
	dir, _ := startServer(t)
	conn, err := net.Dial("unix", SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for _, line := range []string{
		`not json`,
		`{"op":"user.add","args":{"name":"x"}}`,
		`{"op":"user.add","args":{"name":"x","password":"p","admin":true}}`,
		`{"op":"rm -rf"}`,
		`{"op":"user.list"} {"op":"user.list"}`,
		`{"op":"deliver","args":{"to":[],"raw":"eA=="}}`,
		`{"op":"deliver","args":{"to":["a"],"raw":"not base64!"}}`,
	} {
		if _, err := io.WriteString(conn, line+"\n"); err != nil {
			t.Fatal(err)
		}
		respLine, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("%s: connection lost: %v", line, err)
		}
		var resp Response
		if err := json.Unmarshal(respLine, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.OK || resp.Code != "badrequest" {
			t.Errorf("%s: got %s", line, respLine)
		}
	}
	// Still serving after all that.
	io.WriteString(conn, `{"op":"user.list"}`+"\n")
	respLine, _ := r.ReadBytes('\n')
	if !strings.HasPrefix(string(respLine), `{"ok":true,"result":[]}`) {
		t.Fatalf("list after bad requests: %s", respLine)
	}
	// An over-long line is refused and the connection closed.
	io.WriteString(conn, `{"op":"deliver","args":{"to":["a"],"raw":"`+strings.Repeat("A", 3<<20)+"\"}}\n")
	respLine, _ = r.ReadBytes('\n')
	if !strings.Contains(string(respLine), "badrequest") {
		t.Fatalf("over-long request: %s", respLine)
	}
}

func TestConnectFallsBackAndDetectsLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	openLocal := func() (*Local, error) {
		return OpenLocal(storeOpts(dir), delivery.Options{Logger: quiet()})
	}
	// No server: the store is opened directly.
	ops, err := Connect(ctx, ConnectOptions{Socket: SocketPath(dir), OpenLocal: openLocal})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ops.(*Local); !ok {
		t.Fatalf("got %T, want *Local", ops)
	}
	if err := ops.AddUser(ctx, "carol", "pw"); err != nil {
		t.Fatal(err)
	}
	// While it is open, another opener finds the directory locked and,
	// with no socket to turn to, says so.
	_, err = Connect(ctx, ConnectOptions{Socket: SocketPath(dir), OpenLocal: openLocal, LockWait: 300 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("locked directory: %v", err)
	}
	if err := ops.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed: the account is durable and the store opens again.
	ops, err = Connect(ctx, ConnectOptions{Socket: SocketPath(dir), OpenLocal: openLocal})
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Close()
	if names, err := ops.ListUsers(ctx); err != nil || !slices.Equal(names, []string{"carol"}) {
		t.Fatalf("after reopen: %v %v", names, err)
	}

	// A server: Connect uses its socket.
	sdir, _ := startServer(t)
	ops2, err := Connect(ctx, ConnectOptions{Socket: SocketPath(sdir), OpenLocal: func() (*Local, error) {
		t.Fatal("opened the store although a server answers")
		return nil, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ops2.Close()
	if _, ok := ops2.(*Client); !ok {
		t.Fatalf("got %T, want *Client", ops2)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	// A socket file left by a server killed with -9: nobody listens.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Dial(context.Background(), path); !errors.Is(err, ErrNoServer) {
		t.Fatalf("dial stale socket: %v", err)
	}
	ln, err = Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

// FuzzAdminRequest checks the request decoder: no panics, and whatever it
// accepts is a known op with well-formed arguments that survive a round
// trip through the client's encoding.
func FuzzAdminRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"user.list"}`,
		`{"op":"user.add","args":{"name":"alice","password":"pw"}}`,
		`{"op":"user.del","args":{"name":"alice"}}`,
		`{"op":"user.passwd","args":{"name":"alice","password":"x"}}`,
		`{"op":"deliver","args":{"to":["alice","bob@example.org"],"mailbox":"INBOX","raw":"U3ViamVjdDogaGkNCg0KaGkNCg=="}}`,
		`{"op":"deliver","args":{"to":["a"],"raw":""}}`,
		`{"op":"user.list","args":null}`,
		`{"op":"user.list","args":{}} `,
		`{"op":"x"}`,
		`[]`,
		`{"op":"user.add","args":{"name":"a","password":"b"},"op":"user.del"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		op, args, err := DecodeRequest(line)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error not ErrBadRequest: %v", err)
			}
			return
		}
		var again []byte
		switch op {
		case OpUserList:
			if args != nil {
				t.Fatalf("user.list args %v", args)
			}
			again, _ = json.Marshal(Request{Op: op})
		case OpUserAdd, OpUserDel, OpUserPasswd:
			a := args.(*UserArgs)
			if a.Name == "" || (op != OpUserDel && a.Password == "") {
				t.Fatalf("%s accepted with %+v", op, a)
			}
			b, _ := json.Marshal(a)
			again, _ = json.Marshal(Request{Op: op, Args: b})
		case OpDeliver:
			a := args.(*DeliverArgs)
			if len(a.To) == 0 || a.Raw == nil || slices.Contains(a.To, "") {
				t.Fatalf("deliver accepted with %+v", a)
			}
			b, _ := json.Marshal(a)
			again, _ = json.Marshal(Request{Op: op, Args: b})
		default:
			t.Fatalf("accepted unknown op %q", op)
		}
		op2, args2, err := DecodeRequest(again)
		if err != nil || op2 != op {
			t.Fatalf("round trip of %s: %v", again, err)
		}
		b1, _ := json.Marshal(args)
		b2, _ := json.Marshal(args2)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("round trip changed args: %s vs %s", b1, b2)
		}
	})
}

func TestSocketPathTooLong(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 120), SocketName)
	if _, err := Listen(long); err == nil || !strings.Contains(err.Error(), "shorter data directory") {
		t.Fatalf("Listen: %v", err)
	}
	if _, err := Dial(context.Background(), long); err == nil || errors.Is(err, ErrNoServer) {
		// Not "no server": falling back to opening the store would hide
		// why the server's socket could never be reached.
		t.Fatalf("Dial: %v", err)
	}
}
