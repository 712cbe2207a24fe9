package interop

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// marionette is a minimal client of Firefox's and Thunderbird's remote
// control protocol (https://firefox-source-docs.mozilla.org/testing/marionette/Protocol.html):
// messages are "LENGTH:JSON" on a TCP connection, a command is
// [0, id, name, params] and its answer [1, id, error, result]. The tests
// need only a session, the chrome context and script execution, which is
// too little to import a WebDriver library for.
type marionette struct {
	conn net.Conn
	r    *bufio.Reader
	id   int
}

// dialMarionette connects to addr until deadline (Thunderbird opens the
// port a few seconds after it starts) and reads the server's hello.
func dialMarionette(addr string, deadline time.Time, exited <-chan struct{}) (*marionette, error) {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			m := &marionette{conn: c, r: bufio.NewReader(c)}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			var hello struct {
				Protocol int `json:"marionetteProtocol"`
			}
			if err := m.read(&hello); err != nil {
				c.Close()
				return nil, fmt.Errorf("marionette hello: %w", err)
			}
			if hello.Protocol != 3 {
				c.Close()
				return nil, fmt.Errorf("marionette protocol %d, want 3", hello.Protocol)
			}
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("marionette did not listen on %s: %w", addr, err)
		}
		select {
		case <-exited:
			return nil, errors.New("thunderbird exited before marionette listened")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (m *marionette) Close() error { return m.conn.Close() }

// read reads one length-prefixed JSON message into v.
func (m *marionette) read(v any) error {
	n, err := m.r.ReadString(':')
	if err != nil {
		return err
	}
	size, err := strconv.Atoi(n[:len(n)-1])
	if err != nil || size < 0 || size > 64<<20 {
		return fmt.Errorf("bad message length %q", n)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(m.r, buf); err != nil {
		return err
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return fmt.Errorf("decoding %.200s: %w", buf, err)
	}
	return nil
}

// call sends a command and decodes its result into out (if not nil),
// waiting at most timeout for the answer.
func (m *marionette) call(timeout time.Duration, name string, params any, out any) error {
	m.id++
	msg, err := json.Marshal([]any{0, m.id, name, params})
	if err != nil {
		return err
	}
	m.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(m.conn, "%d:%s", len(msg), msg); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for {
		var resp []json.RawMessage
		if err := m.read(&resp); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(resp) != 4 {
			return fmt.Errorf("%s: answer with %d fields", name, len(resp))
		}
		var id int
		if err := json.Unmarshal(resp[1], &id); err != nil || id != m.id {
			continue // an answer to a command that timed out earlier
		}
		if string(resp[2]) != "null" {
			var e struct{ Error, Message, Stacktrace string }
			json.Unmarshal(resp[2], &e)
			return fmt.Errorf("%s: %s: %s\n%s", name, e.Error, e.Message, e.Stacktrace)
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(resp[3], out)
	}
}

// startChromeSession opens a session and switches to the chrome context,
// where scripts run with the application's privileges (MailServices, the
// login manager); Thunderbird allows that only when started with
// --remote-allow-system-access.
func (m *marionette) startChromeSession() error {
	if err := m.call(60*time.Second, "WebDriver:NewSession", map[string]any{}, nil); err != nil {
		return err
	}
	return m.call(10*time.Second, "Marionette:SetContext", map[string]any{"value": "chrome"}, nil)
}

// exec runs script as the body of an async function (so it may await;
// `arguments` are args) and decodes what it returns into out. The script
// is bounded by timeout both in Thunderbird and on the connection.
func (m *marionette) exec(timeout time.Duration, script string, out any, args ...any) error {
	if args == nil {
		args = []any{}
	}
	if err := m.call(5*time.Second, "WebDriver:SetTimeouts", map[string]any{"script": timeout.Milliseconds()}, nil); err != nil {
		return err
	}
	// Marionette's async scripts end by calling their last argument.
	wrapped := `const done = arguments[arguments.length - 1];
(async function() {
` + script + `
}).apply(null, Array.from(arguments).slice(0, -1)).then(
  v => done({ok: v === undefined ? null : v}),
  e => done({err: String(e) + "\n" + (e && e.stack || "")}));`
	var res struct {
		Value struct {
			OK  json.RawMessage `json:"ok"`
			Err string          `json:"err"`
		} `json:"value"`
	}
	if err := m.call(timeout+5*time.Second, "WebDriver:ExecuteAsyncScript", map[string]any{"script": wrapped, "args": args}, &res); err != nil {
		return err
	}
	if res.Value.Err != "" {
		return fmt.Errorf("script threw %s", res.Value.Err)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(res.Value.OK, out)
}
