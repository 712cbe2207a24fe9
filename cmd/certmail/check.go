package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"certmail/admin"
	"certmail/certified"
	"certmail/config"
	"certmail/node"
)

// cmdCheck verifies a released certified item: the message now in the
// recipient's mailbox against the commitment that was signed, and its
// evidence.
func newCheckCmd(e *env) *cobra.Command {
	var df dirFlags
	var label string
	c := &cobra.Command{
		Use:   "check --label L",
		Short: "verify a released item: the message in the mailbox against the H(L,r,M) that was signed",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			return status(runCheck(e, &df, label))
		},
	}
	df.register(c.Flags())
	c.Flags().StringVar(&label, "label", "", "the item's `label`")
	c.MarkFlagRequired("label")
	return c
}

func runCheck(e *env, df *dirFlags, label string) int {
	return withOps(e, df, "check "+label, func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		var rc certified.ReleaseCheck
		if err := ops.Call(ctx, "item.check", node.LabelParams{Label: label}, &rc); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "item %s: %s\nsigned  hash = %s\nmailbox hash = %s (%s)\nOK: the released message is the one acknowledged\n\n%s",
			rc.Label, rc.State, rc.Hash, rc.Found, rc.Where, rc.Verdict)
		return nil
	})
}
