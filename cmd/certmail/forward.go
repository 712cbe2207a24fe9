package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"certmail/admin"
	"certmail/config"
	"certmail/forwarding"
	"certmail/node"
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

// newPolicyCmd sets, shows or clears an account's auto-forward policy.
func newPolicyCmd(e *env) *cobra.Command {
	sub := func(name, use, short string, args cobra.PositionalArgs) (*cobra.Command, *policyFlags) {
		pf := &policyFlags{}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  args,
			RunE: func(c *cobra.Command, args []string) error {
				return status(runPolicy(e, name, args, pf))
			},
		}
		pf.df.register(c.Flags())
		return c, pf
	}
	set, sf := sub("set", "set ACCOUNT --forward-unread-after D --to ALT[,ALT...] [--certified-only] [--mailbox M]",
		"auto-forward what stays unread to alternates", exactArgs("ACCOUNT"))
	set.Flags().Var(durationFlag{&sf.after}, "forward-unread-after", "forward what stays unread this `long` (72h, 7d)")
	set.Flags().StringVar(&sf.to, "to", "", "alternates: comma-separated accounts or addresses")
	set.Flags().BoolVar(&sf.certOnly, "certified-only", false, "only forward certified items")
	set.Flags().StringVar(&sf.mbox, "mailbox", "", "the watched `mailbox` (default INBOX)")
	set.Flags().BoolVar(&sf.asJSON, "json", false, "print the account's policies as JSON")
	set.MarkFlagRequired("forward-unread-after")
	set.MarkFlagRequired("to")
	show, shf := sub("show", "show [ACCOUNT]", "show the auto-forward policies (of one account)", cobra.MaximumNArgs(1))
	show.Flags().BoolVar(&shf.asJSON, "json", false, "print JSON")
	clear, cf := sub("clear", "clear ACCOUNT [--mailbox M]", "remove an account's auto-forward policy", exactArgs("ACCOUNT"))
	clear.Flags().StringVar(&cf.mbox, "mailbox", "", "the watched `mailbox` (default INBOX)")
	return groupCmd("policy", "auto-forward policies", set, show, clear)
}

type policyFlags struct {
	df       dirFlags
	after    config.Duration
	to, mbox string
	certOnly bool
	asJSON   bool
}

func runPolicy(e *env, sub string, pos []string, pf *policyFlags) int {
	df, after, to, certOnly, mbox, asJSON := &pf.df, pf.after, &pf.to, &pf.certOnly, &pf.mbox, &pf.asJSON
	acct := ""
	if len(pos) == 1 {
		acct = pos[0]
	}
	return withOps(e, df, "policy "+sub, func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
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
			if err := ops.Call(ctx, "policy.show", node.PolicyParams{Account: acct}, &policies); err != nil {
				return err
			}
		case "clear":
			return ops.Call(ctx, "policy.clear", node.PolicyParams{Account: acct, Mailbox: *mbox}, nil)
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

// newForwardCmd forwards one message by hand (operator forward, recorded).
func newForwardCmd(e *env) *cobra.Command {
	var df dirFlags
	var uid uint
	var mbox, to string
	c := &cobra.Command{
		Use:   "forward ACCOUNT --uid N [--mailbox M] --to ADDR[,ADDR...]",
		Short: "forward a message by hand (recorded)",
		Args:  exactArgs("ACCOUNT"),
		RunE: func(c *cobra.Command, args []string) error {
			if uid == 0 {
				return usageError("--uid must be a message's UID (1 or more)")
			}
			return status(runForward(e, &df, args[0], uint32(uid), mbox, to))
		},
	}
	df.register(c.Flags())
	c.Flags().UintVar(&uid, "uid", 0, "the message's `UID`")
	c.Flags().StringVar(&mbox, "mailbox", "INBOX", "the message's `mailbox`")
	c.Flags().StringVar(&to, "to", "", "comma-separated accounts or addresses")
	c.MarkFlagRequired("uid")
	c.MarkFlagRequired("to")
	return c
}

func runForward(e *env, df *dirFlags, acct string, uid uint32, mbox, to string) int {
	return withOps(e, df, "forward", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		if err := ops.Call(ctx, "forward.message", node.ForwardParams{Account: acct, Mailbox: mbox, UID: uid,
			To: strings.Split(to, ","), Actor: operatorName()}, nil); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "forwarded %s/%s UID %d to %s\n", acct, mbox, uid, to)
		return nil
	})
}

// newShowCmd prints a message for an operator; the view is recorded.
func newShowCmd(e *env) *cobra.Command {
	var df dirFlags
	var uid uint
	var mbox string
	c := &cobra.Command{
		Use:   "show ACCOUNT --uid N [--mailbox M]",
		Short: "print a message as an operator (recorded)",
		Args:  exactArgs("ACCOUNT"),
		RunE: func(c *cobra.Command, args []string) error {
			if uid == 0 {
				return usageError("--uid must be a message's UID (1 or more)")
			}
			return status(runShow(e, &df, args[0], uint32(uid), mbox))
		},
	}
	df.register(c.Flags())
	c.Flags().UintVar(&uid, "uid", 0, "the message's `UID`")
	c.Flags().StringVar(&mbox, "mailbox", "INBOX", "the message's `mailbox`")
	c.MarkFlagRequired("uid")
	return c
}

func runShow(e *env, df *dirFlags, acct string, uid uint32, mbox string) int {
	return withOps(e, df, "show", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		var raw []byte
		if err := ops.Call(ctx, "message.show", node.ForwardParams{Account: acct, Mailbox: mbox, UID: uid, Actor: operatorName()}, &raw); err != nil {
			return err
		}
		_, err := e.stdout.Write(raw)
		return err
	})
}

// newUnreadCmd reports unread mail per account and mailbox, and
// certified items by state.
func newUnreadCmd(e *env) *cobra.Command {
	var df dirFlags
	var olderThan config.Duration
	var asJSON bool
	c := &cobra.Command{
		Use:   "unread [--older-than D] [--json]",
		Short: "unread counts and ages per mailbox, certified items by state",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			return status(runUnread(e, &df, olderThan, asJSON))
		},
	}
	df.register(c.Flags())
	c.Flags().Var(durationFlag{&olderThan}, "older-than", "only mailboxes whose oldest unread message is older than this `duration` (12h, 2d)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func runUnread(e *env, df *dirFlags, olderThan config.Duration, asJSON bool) int {
	return withOps(e, df, "unread", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		var rep forwarding.Report
		if err := ops.Call(ctx, "unread", node.UnreadParams{OlderThan: time.Duration(olderThan)}, &rep); err != nil {
			return err
		}
		if asJSON {
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

// operatorName names who runs an operator command, for the records.
func operatorName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "operator"
}
