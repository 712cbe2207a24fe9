package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// OpCall runs a named extension method: operator and user commands of the
// packages built on the store (keys, policies, forwarding, evidence) are
// methods, so that adding one needs no change to the protocol.
const OpCall = "call"

// CallArgs are the arguments of call. Params is the method's own JSON,
// which the method decodes strictly.
type CallArgs struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Method is an extension operation. It must decode params strictly and
// return a JSON-encodable result.
type Method func(ctx context.Context, params json.RawMessage) (any, error)

// Methods are the extension methods a Local serves, by name.
type Methods map[string]Method

// Names lists the methods, sorted.
func (m Methods) Names() []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Call runs a method on the open store.
func (l *Local) Call(ctx context.Context, method string, params, result any) error {
	fn := l.Methods[method]
	if fn == nil {
		return fmt.Errorf("%w: unknown method %q", ErrBadRequest, method)
	}
	p, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", method, err)
	}
	out, err := fn(ctx, p)
	if err != nil {
		return err
	}
	return remarshal(out, result)
}

// Call runs a method in the server.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	p, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", method, err)
	}
	return c.call(ctx, OpCall, CallArgs{Method: method, Params: p}, result)
}

// remarshal copies a method's result into the caller's value the way it
// would cross the socket, so Local and Client behave alike.
func remarshal(in, out any) error {
	if out == nil {
		return nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding result: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding result: %w", err)
	}
	return nil
}

// DecodeParams decodes a method's params strictly: unknown fields and
// trailing data are errors that say so.
func DecodeParams(params json.RawMessage, v any) error {
	if err := strictUnmarshal(params, v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}
