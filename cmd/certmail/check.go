package main

import (
	"context"
	"fmt"

	"certmail/certified"
)

// cmdCheck verifies a released certified item: the message now in the
// recipient's mailbox against the H(L,M) that was signed, and its evidence.
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
	cfg, err := df.load()
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: %v\n", err)
		return exitFailure
	}
	ctx := context.Background()
	ops, err := connectOps(ctx, cfg, e, false)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: %v\n", err)
		return exitFailure
	}
	defer ops.Close()
	var rc certified.ReleaseCheck
	if err := ops.Call(ctx, "item.check", LabelParams{Label: *label}, &rc); err != nil {
		fmt.Fprintf(e.stderr, "certmail: check %s: %v\n", *label, err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "item %s: %s\nsigned  H(L,M) = %s\nmailbox H(L,M) = %s (%s)\nOK: the released message is the one acknowledged\n\n%s",
		rc.Label, rc.State, rc.Hash, rc.Found, rc.Where, rc.Verdict)
	return exitOK
}
