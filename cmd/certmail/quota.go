package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"certmail/admin"
	"certmail/config"
	"certmail/mailbox"
)

// QuotaParams are the params of user.quota: nil leaves a limit as it is,
// mailbox.QuotaDefault puts it back on the configuration's default, 0 is
// no limit.
type QuotaParams struct {
	Account  string `json:"account"`
	Storage  *int64 `json:"storage,omitempty"`
	Messages *int64 `json:"messages,omitempty"`
}

// QuotaResult is an account's usage and limits (0: no limit).
type QuotaResult struct {
	StorageUsed   int64 `json:"storage_used"`
	StorageLimit  int64 `json:"storage_limit"`
	MessagesUsed  int64 `json:"messages_used"`
	MessagesLimit int64 `json:"messages_limit"`
}

// addQuotaMethods: user.quota sets an account's limits (if given) and
// returns its usage and limits.
func (s *services) addQuotaMethods(m admin.Methods) {
	store := s.certified.Store()
	m["user.quota"] = func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p QuotaParams
		if err := admin.DecodeParams(raw, &p); err != nil {
			return nil, err
		}
		acct, err := mailbox.NormalizeAccount(p.Account)
		if err != nil {
			return nil, fmt.Errorf("account %q: %w", p.Account, err)
		}
		if p.Storage != nil || p.Messages != nil {
			if err := store.SetQuota(acct, p.Storage, p.Messages); err != nil {
				return nil, err
			}
			if err := store.Sync(); err != nil {
				return nil, err
			}
		}
		q, err := store.Quota(acct)
		if err != nil {
			return nil, err
		}
		return QuotaResult{q.StorageUsed, q.StorageLimit, q.MessagesUsed, q.MessagesLimit}, nil
	}
}

// parseQuotaStorage reads --storage: a size (1GiB, 500MB, 1048576),
// 0 or "none" for no limit, "default" for the configuration's.
func parseQuotaStorage(s string) (*int64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return nil, nil
	case "default":
		return new(mailbox.QuotaDefault), nil
	case "none", "unlimited":
		return new(int64(0)), nil
	}
	n, err := config.ParseByteSize(s)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("--storage %q: a size (1GiB, 500MB), 0 or none for no limit, or default", s)
	}
	return new(int64(n)), nil
}

// parseQuotaMessages reads --messages: a count, 0 or "none" for no
// limit, "default" for the configuration's.
func parseQuotaMessages(s string) (*int64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return nil, nil
	case "default":
		return new(mailbox.QuotaDefault), nil
	case "none", "unlimited":
		return new(int64(0)), nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("--messages %q: a count, 0 or none for no limit, or default", s)
	}
	return &n, nil
}

// printQuota prints usage against limits, one resource a line.
func printQuota(e *env, acct string, q QuotaResult) {
	limit := func(n int64, f func(int64) string) string {
		if n == 0 {
			return "no limit"
		}
		return f(n)
	}
	bytes := func(n int64) string { return config.ByteSize(n).String() }
	count := func(n int64) string { return strconv.FormatInt(n, 10) }
	fmt.Fprintf(e.stdout, "%s\n  storage   %s of %s\n  messages  %s of %s\n", acct,
		bytes(q.StorageUsed), limit(q.StorageLimit, bytes), count(q.MessagesUsed), limit(q.MessagesLimit, count))
}
