package node

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"certmail/admin"
	"certmail/forwarding"
)

// PolicyParams are the params of policy.set (a Policy), policy.show and
// policy.clear (Account, Mailbox).
type PolicyParams struct {
	Account string `json:"account"`
	Mailbox string `json:"mailbox,omitempty"`
}

// ForwardParams are the params of forward.message and message.show.
type ForwardParams struct {
	Account string   `json:"account"`
	Mailbox string   `json:"mailbox,omitempty"`
	UID     uint32   `json:"uid"`
	To      []string `json:"to,omitempty"`
	Actor   string   `json:"actor"`
}

// UnreadParams are the params of unread.
type UnreadParams struct {
	OlderThan time.Duration `json:"older_than"`
}

func (s *Services) addForwardMethods(m admin.Methods) {
	fw := s.forwarding
	m["policy.set"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p forwarding.Policy
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		if err := fw.SetPolicy(p); err != nil {
			return nil, err
		}
		return fw.Policies(p.Account), nil
	}
	m["policy.show"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p PolicyParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		return fw.Policies(p.Account), nil
	}
	m["policy.clear"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p PolicyParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		return nil, fw.ClearPolicy(p.Account, p.Mailbox)
	}
	m["forward.message"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p ForwardParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		if len(p.To) == 0 {
			return nil, fmt.Errorf("%w: no --to", admin.ErrBadRequest)
		}
		return nil, fw.OperatorForward(p.Account, p.Mailbox, p.UID, p.To, p.Actor)
	}
	m["message.show"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p ForwardParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		return fw.OperatorShow(p.Account, p.Mailbox, p.UID, p.Actor)
	}
	m["unread"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p UnreadParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		return fw.Unread(p.OlderThan)
	}
}
