package main

import (
	"context"
	"fmt"

	"certmail/admin"
	"certmail/certified"
	"certmail/config"
)

// cmdCheck verifies a released certified item: the message now in the
// recipient's mailbox against the commitment that was signed, and its
// evidence.
func cmdCheck(args []string, e *env) int {
	fs := newFlagSet("check", e)
	var df dirFlags
	df.register(fs)
	label := fs.String("label", "", "the item's `label`")
	if _, err := parseInterspersed(fs, args); err != nil {
		return exitUsage
	}
	if *label == "" {
		fmt.Fprintln(e.stderr, "usage: certmail check --label L [--data DIR]")
		return exitUsage
	}
	return withOps(e, &df, "check "+*label, func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		var rc certified.ReleaseCheck
		if err := ops.Call(ctx, "item.check", LabelParams{Label: *label}, &rc); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "item %s: %s\nsigned  hash = %s\nmailbox hash = %s (%s)\nOK: the released message is the one acknowledged\n\n%s",
			rc.Label, rc.State, rc.Hash, rc.Found, rc.Where, rc.Verdict)
		return nil
	})
}
