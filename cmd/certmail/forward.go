package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"certmail/admin"
	"certmail/config"
	"certmail/forwarding"
)

// withOps loads the configuration and reaches the data directory, runs fn
// and reports its error: the frame of every operator command.
func withOps(e *env, df *dirFlags, name string, fn func(ctx context.Context, ops admin.Ops, cfg *config.Config) error) int {
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
	if err := fn(ctx, ops, cfg); err != nil {
		fmt.Fprintf(e.stderr, "certmail: %s: %v\n", name, err)
		return exitFailure
	}
	return exitOK
}

// cmdPolicy sets, shows or clears an account's auto-forward policy.
func cmdPolicy(args []string, e *env) int {
	if len(args) == 0 || (args[0] != "set" && args[0] != "show" && args[0] != "clear") {
		fmt.Fprintln(e.stderr, "usage: certmail policy set ACCOUNT --forward-unread-after D --to ALT[,ALT...] [--certified-only] [--mailbox NAME]\n       certmail policy show [ACCOUNT]\n       certmail policy clear ACCOUNT [--mailbox NAME]")
		return exitUsage
	}
	sub := args[0]
	fs := newFlagSet("policy "+sub, e)
	var df dirFlags
	df.register(fs)
	var after config.Duration
	fs.Var(&after, "forward-unread-after", "forward what stays unread this `long` (72h, 7d)")
	to := fs.String("to", "", "alternates: comma-separated accounts or addresses")
	certOnly := fs.Bool("certified-only", false, "only forward certified items")
	mbox := fs.String("mailbox", "", "the watched `mailbox` (default INBOX)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return exitUsage
	}
	if (sub != "show" && len(pos) != 1) || len(pos) > 1 {
		fmt.Fprintf(e.stderr, "usage: certmail policy %s ACCOUNT\n", sub)
		return exitUsage
	}
	acct := ""
	if len(pos) == 1 {
		acct = pos[0]
	}
	return withOps(e, &df, "policy "+sub, func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		var policies []forwarding.Policy
		switch sub {
		case "set":
			p := forwarding.Policy{Account: acct, Mailbox: *mbox, After: time.Duration(after), CertifiedOnly: *certOnly}
			for _, t := range strings.Split(*to, ",") {
				if t = strings.TrimSpace(t); t != "" {
					p.To = append(p.To, t)
				}
			}
			if err := ops.Call(ctx, "policy.set", p, &policies); err != nil {
				return err
			}
		case "show":
			if err := ops.Call(ctx, "policy.show", PolicyParams{Account: acct}, &policies); err != nil {
				return err
			}
		case "clear":
			return ops.Call(ctx, "policy.clear", PolicyParams{Account: acct, Mailbox: *mbox}, nil)
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(policies)
		}
		if len(policies) == 0 {
			fmt.Fprintln(e.stdout, "no forwarding policies")
		}
		for _, p := range policies {
			only := ""
			if p.CertifiedOnly {
				only = " (certified items only)"
			}
			fmt.Fprintf(e.stdout, "%s/%s: forward unread after %s to %s%s [%s]\n", p.Account, p.Mailbox, config.FormatDuration(p.After), strings.Join(p.To, ", "), only, p.Source)
		}
		return nil
	})
}

// cmdForward forwards one message by hand (operator forward, recorded).
func cmdForward(args []string, e *env) int {
	fs := newFlagSet("forward", e)
	var df dirFlags
	df.register(fs)
	uid := fs.Uint("uid", 0, "the message's `UID`")
	mbox := fs.String("mailbox", "INBOX", "the message's `mailbox`")
	to := fs.String("to", "", "comma-separated accounts or addresses")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || *uid == 0 || *to == "" {
		fmt.Fprintln(e.stderr, "usage: certmail forward ACCOUNT --uid N [--mailbox M] --to ADDR[,ADDR...]")
		return exitUsage
	}
	return withOps(e, &df, "forward", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		if err := ops.Call(ctx, "forward.message", ForwardParams{Account: pos[0], Mailbox: *mbox, UID: uint32(*uid),
			To: strings.Split(*to, ","), Actor: operatorName()}, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "forwarded %s/%s UID %d to %s\n", pos[0], *mbox, *uid, *to)
		return nil
	})
}

// cmdShow prints a message for an operator; the view is recorded.
func cmdShow(args []string, e *env) int {
	fs := newFlagSet("show", e)
	var df dirFlags
	df.register(fs)
	uid := fs.Uint("uid", 0, "the message's `UID`")
	mbox := fs.String("mailbox", "INBOX", "the message's `mailbox`")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || *uid == 0 {
		fmt.Fprintln(e.stderr, "usage: certmail show ACCOUNT --uid N [--mailbox M]")
		return exitUsage
	}
	return withOps(e, &df, "show", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		var raw []byte
		if err := ops.Call(ctx, "message.show", ForwardParams{Account: pos[0], Mailbox: *mbox, UID: uint32(*uid), Actor: operatorName()}, &raw); err != nil {
			return err
		}
		_, err := e.stdout.Write(raw)
		return err
	})
}

// cmdUnread reports unread mail per account and mailbox, and certified
// items by state.
func cmdUnread(args []string, e *env) int {
	fs := newFlagSet("unread", e)
	var df dirFlags
	df.register(fs)
	var olderThan config.Duration
	fs.Var(&olderThan, "older-than", "only mailboxes whose oldest unread message is older than this `duration` (12h, 2d)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterspersed(fs, args); err != nil {
		return exitUsage
	}
	return withOps(e, &df, "unread", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		var rep forwarding.Report
		if err := ops.Call(ctx, "unread", UnreadParams{OlderThan: time.Duration(olderThan)}, &rep); err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tMAILBOX\tUNREAD\tMESSAGES\tOLDEST UNREAD")
		for _, m := range rep.Mailboxes {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s (%s ago)\n", m.Account, m.Mailbox, m.Unread, m.Messages,
				m.OldestUnread.Format(time.RFC3339), config.FormatDuration(m.OldestAge.Round(time.Second)))
		}
		tw.Flush()
		c := rep.Certified
		fmt.Fprintf(e.stdout, "\ncertified items: %d held, %d acknowledged, %d refused, %d expired; %d forwards done\n",
			c.Held, c.Acknowledged, c.Refused, c.Expired, rep.Forwards)
		for _, it := range c.NearDeadline {
			fmt.Fprintf(e.stdout, "  near deadline: %s for %s, due %s (%s left)\n", it.Label, it.Recipient,
				it.Deadline.Format(time.RFC3339), time.Until(it.Deadline).Round(time.Second))
		}
		return nil
	})
}
