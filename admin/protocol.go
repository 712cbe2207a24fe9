package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// Operation names on the wire.
const (
	OpUserAdd    = "user.add"
	OpUserDel    = "user.del"
	OpUserPasswd = "user.passwd"
	OpUserList   = "user.list"
	OpDeliver    = "deliver"
)

// Request is one line from the client.
type Request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is one line from the server.
type Response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Code   string          `json:"code,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// UserArgs are the arguments of the user.* operations.
type UserArgs struct {
	Name     string `json:"name"`
	Password string `json:"password,omitempty"`
}

// DeliverArgs are the arguments of deliver. Raw is base64 in JSON.
type DeliverArgs struct {
	To      []string `json:"to"`
	Mailbox string   `json:"mailbox,omitempty"`
	Raw     []byte   `json:"raw"`
}

// RcptResult is one recipient's outcome of deliver.
type RcptResult struct {
	Rcpt  string `json:"rcpt"`
	OK    bool   `json:"ok"`
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// DecodeRequest parses and checks one request line: a single JSON object
// with a known op and exactly the arguments that op takes. It returns the
// op and its arguments (nil, *UserArgs or *DeliverArgs). The server runs
// nothing it did not fully understand.
func DecodeRequest(line []byte) (string, any, error) {
	var req Request
	if err := strictUnmarshal(line, &req); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	bad := func(format string, a ...any) (string, any, error) {
		return "", nil, fmt.Errorf("%w: %s: %s", ErrBadRequest, req.Op, fmt.Sprintf(format, a...))
	}
	hasArgs := len(bytes.TrimSpace(req.Args)) > 0 && !bytes.Equal(bytes.TrimSpace(req.Args), []byte("null"))
	switch req.Op {
	case OpUserList:
		if hasArgs {
			if err := strictUnmarshal(req.Args, &struct{}{}); err != nil {
				return bad("takes no arguments")
			}
		}
		return req.Op, nil, nil
	case OpUserAdd, OpUserDel, OpUserPasswd:
		var a UserArgs
		if !hasArgs {
			return bad("missing args")
		}
		if err := strictUnmarshal(req.Args, &a); err != nil {
			return bad("%v", err)
		}
		if a.Name == "" {
			return bad("missing name")
		}
		if req.Op == OpUserDel && a.Password != "" {
			return bad("takes no password")
		}
		if req.Op != OpUserDel && a.Password == "" {
			return bad("missing password")
		}
		return req.Op, &a, nil
	case OpDeliver:
		var a DeliverArgs
		if !hasArgs {
			return bad("missing args")
		}
		if err := strictUnmarshal(req.Args, &a); err != nil {
			return bad("%v", err)
		}
		if len(a.To) == 0 {
			return bad("no recipients")
		}
		for _, t := range a.To {
			if t == "" {
				return bad("empty recipient")
			}
		}
		if a.Raw == nil {
			return bad("missing raw")
		}
		return req.Op, &a, nil
	case OpCall:
		var a CallArgs
		if !hasArgs {
			return bad("missing args")
		}
		if err := strictUnmarshal(req.Args, &a); err != nil {
			return bad("%v", err)
		}
		if a.Method == "" {
			return bad("missing method")
		}
		if len(a.Params) == 0 {
			a.Params = json.RawMessage("null")
		}
		return req.Op, &a, nil
	case "":
		return "", nil, fmt.Errorf("%w: missing op", ErrBadRequest)
	}
	return bad("unknown op")
}

// strictUnmarshal decodes exactly one JSON value with no unknown fields
// and nothing after it.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the request")
	}
	return nil
}
