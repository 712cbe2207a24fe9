package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"certmail/delivery"
	"certmail/mailbox"
)

// deliverUsage names the exit codes, which are what an MTA's pipe
// transport acts on (sysexits.h).
const deliverLong = `Stores one message read from stdin. Exit codes (sysexits.h):
  0   stored and durable
  65  EX_DATAERR: refused as it is (a malformed Certified-Delivery field,
      too large); permanent, the MTA bounces
  67  EX_NOUSER: no such user; permanent
  69  EX_UNAVAILABLE: domain not served here, or a bad address; permanent
  73  EX_CANTCREAT: the recipient is over quota; permanent
  75  EX_TEMPFAIL: temporary (disk full, store locked or failing, a broken
      configuration); the MTA keeps the message and retries
  2   usage error
`

func newDeliverCmd(e *env) *cobra.Command {
	var df dirFlags
	var to, mbox string
	c := &cobra.Command{
		Use:   "deliver --to USER [--mailbox NAME] < message",
		Short: "store one message read from stdin; exit 0 once durable, 65/67/69/73 permanent, 75 temporary (sysexits)",
		Long:  deliverLong,
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			return status(runDeliver(e, &df, to, mbox))
		},
	}
	df.register(c.Flags())
	c.Flags().StringVar(&to, "to", "", "recipient `user` (an account name or address)")
	c.Flags().StringVar(&mbox, "mailbox", "INBOX", "target `mailbox` (INBOX if the account has no such mailbox)")
	c.MarkFlagRequired("to")
	return c
}

func runDeliver(e *env, df *dirFlags, to, mbox string) int {
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
	errs := ops.Deliver(ctx, []string{to}, mbox, raw)
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
// acts on (sysexits.h; Postfix's pipe(8) and Exim bounce on 65, 67 and 69
// and retry on 75). A refusal of the message as it is (a malformed
// Certified-Delivery field, too large) is permanent: retrying the same
// bytes for days changes nothing. Only what may pass (a full disk, the
// store locked or failing, anything unexpected) is temporary.
func deliverExit(err error) int {
	switch {
	case errors.Is(err, delivery.ErrNoUser):
		return exitNoUser
	case errors.Is(err, delivery.ErrTooLarge), errors.Is(err, delivery.ErrMalformed):
		return exitDataErr
	case errors.Is(err, delivery.ErrDomain), errors.Is(err, delivery.ErrBadAddress):
		return exitUnavail
	case errors.Is(err, mailbox.ErrOverQuota):
		// The user's output "file" cannot take it: Postfix's pipe(8)
		// bounces 73 as 5.2.x, the mailbox class of RFC 3463's 5.2.2.
		return exitCantCreat
	}
	return exitTempFail
}
