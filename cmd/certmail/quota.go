package main

import (
	"fmt"
	"strconv"
	"strings"

	"certmail/config"
	"certmail/mailbox"
	"certmail/node"
)

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
func printQuota(e *env, acct string, q node.QuotaResult) {
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
