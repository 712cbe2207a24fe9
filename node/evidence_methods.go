package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"certmail/admin"
	"certmail/api"
	"certmail/config"
	"certmail/delivery"
	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

// TokenAddParams are the params of token.add.
type TokenAddParams struct {
	Name     string `json:"name"`
	Operator bool   `json:"operator,omitempty"`
	// Senders are the addresses the token's items may have notices
	// mailed to (api.TokenInfo.Senders).
	Senders []string `json:"senders,omitempty"`
}

// TokenAddResult is what token.add returns: the token, shown once.
type TokenAddResult struct {
	Token string `json:"token"`
}

// TokenNameParams name a token (token.del).
type TokenNameParams struct {
	Name string `json:"name"`
}

// BundleParams name the item whose evidence bundle evidence.bundle builds.
type BundleParams struct {
	Label string `json:"label"`
}

// addEvidenceMethods registers the admin methods of this file.
func (s *Services) addEvidenceMethods(m admin.Methods) {
	store := s.certified.Store()
	m["token.add"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p TokenAddParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		var token string
		err := store.Update(func(tx *mailbox.Tx) error {
			var err error
			if token, err = api.AddToken(tx, p.Name, p.Operator, time.Now()); err != nil || len(p.Senders) == 0 {
				return err
			}
			return api.SetTokenSenders(tx, p.Name, p.Senders)
		})
		if err != nil {
			return nil, err
		}
		// The token is handed out only once it is durable.
		if err := store.Sync(); err != nil {
			return nil, fmt.Errorf("syncing store: %w", err)
		}
		return TokenAddResult{Token: token}, nil
	}
	m["token.list"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p struct{}
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		var list []api.TokenInfo
		err := store.View(func(tx *mailbox.Tx) error {
			var err error
			list, err = api.ListTokens(tx)
			return err
		})
		return list, err
	}
	m["token.del"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p TokenNameParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		if err := store.Update(func(tx *mailbox.Tx) error { return api.DeleteToken(tx, p.Name) }); err != nil {
			return nil, err
		}
		return nil, store.Sync()
	}
	m["evidence.bundle"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p BundleParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		if !receipts.ValidLabel(p.Label) {
			return nil, fmt.Errorf("%w: %q is not a label (cm-...)", admin.ErrBadRequest, p.Label)
		}
		b, err := s.certified.Bundle(p.Label)
		if err != nil {
			return nil, err
		}
		// Building may have signed a checkpoint: make it durable before
		// anyone relies on it.
		if err := store.Sync(); err != nil {
			return nil, fmt.Errorf("syncing store: %w", err)
		}
		return b, nil
	}
}

// registerAPI serves the sender API and the public log on mux (serve).
func (s *Services) registerAPI(mux *http.ServeMux, cfg *config.Config, d *delivery.Deliverer, logger *slog.Logger) {
	api.New(api.Options{
		Store:           s.certified.Store(),
		Certified:       s.certified,
		Resolve:         d.Resolve,
		MaxMessageBytes: int64(cfg.Limits.MaxMessageSize),
		Auth:            s.auth,
		Logger:          logger.With("component", "api"),
	}).Register(mux)
}

// runCheckpoints publishes signed checkpoints of the evidence log until
// ctx ends (serve's background loop).
func (s *Services) runCheckpoints(ctx context.Context, logger *slog.Logger) {
	s.certified.Log().RunCheckpoints(ctx, s.certified.Store().Records(),
		evidence.DefaultCheckpointInterval, logger.With("component", "evidence"))
}
