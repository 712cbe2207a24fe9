package main

import (
	"context"
	"errors"
	"fmt"

	"certmail/delivery"
)

func cmdDeliver(args []string, e *env) int {
	fs := newFlagSet("deliver", e)
	var df dirFlags
	df.register(fs)
	to := fs.String("to", "", "recipient `user` (an account name or address)")
	mbox := fs.String("mailbox", "INBOX", "target `mailbox` (INBOX if the account has no such mailbox)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if *to == "" || len(pos) != 0 {
		fmt.Fprintln(e.stderr, "usage: certmail deliver --to USER [--mailbox NAME] [--data DIR] < message")
		return exitUsage
	}
	cfg, err := df.load()
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail deliver: %v\n", err)
		// A broken configuration is the operator's to fix; the MTA should
		// keep the message meanwhile.
		return exitTempFail
	}
	raw, err := readLimited(e.stdin, int64(cfg.Limits.MaxMessageSize))
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail deliver: reading message: %v\n", err)
		return deliverExit(err)
	}
	ctx := context.Background()
	ops, err := connectOps(ctx, cfg, e, false)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail deliver: %v\n", err)
		return exitTempFail
	}
	errs := ops.Deliver(ctx, []string{*to}, *mbox, raw)
	cerr := ops.Close()
	if errs[0] != nil {
		fmt.Fprintf(e.stderr, "certmail deliver: %v\n", errs[0])
		return deliverExit(errs[0])
	}
	if cerr != nil {
		// Closing a local store syncs it; if that failed the message may
		// not be durable.
		fmt.Fprintf(e.stderr, "certmail deliver: closing store: %v\n", cerr)
		return exitTempFail
	}
	return exitOK
}

// deliverExit maps a delivery error to the sysexits code a pipe transport
// acts on. Anything unexpected is temporary: the MTA keeps the message.
func deliverExit(err error) int {
	switch {
	case errors.Is(err, delivery.ErrNoUser):
		return exitNoUser
	case errors.Is(err, delivery.ErrTooLarge):
		return exitDataErr
	case errors.Is(err, delivery.ErrDomain), errors.Is(err, delivery.ErrBadAddress):
		return exitUnavail
	}
	return exitTempFail
}
