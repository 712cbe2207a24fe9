package main

// `certmail item show` and `certmail outbox list|retry`: what happened to
// an item, and to the notices the outbox holds (issue 15). The reports
// are built by certified.ItemReport and notifier.List behind the admin
// methods item.show, outbox.list and outbox.retry; this file prints.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"certmail/admin"
	"certmail/certified"
	"certmail/config"
	"certmail/node"
	"certmail/notifier"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

func newItemCmd(e *env) *cobra.Command {
	var df dirFlags
	var asJSON bool
	show := &cobra.Command{
		Use:   "show LABEL [--json]",
		Short: "what happened to a certified item: state, history, refused CODs, notices and their delivery",
		Long: `Shows what the store knows of a certified item: its state and parties,
its history as the evidence log records it (operator views and forwards
included), the CODs or refusals handed in and refused, and the notices
about it (to the sender by mail, to webhooks) with their delivery state:
sent, queued, waiting for a relay, or dead (certmail outbox retry).`,
		Args: func(c *cobra.Command, args []string) error {
			if err := exactArgs("LABEL")(c, args); err != nil {
				return err
			}
			if !receipts.ValidLabel(args[0]) {
				return usageError("%q is not a label (cm- and 26 characters)", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return status(withOps(e, &df, "item show", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
				var r certified.Report
				if err := ops.Call(ctx, "item.show", node.LabelParams{Label: args[0]}, &r); err != nil {
					return err
				}
				if asJSON {
					return writeJSON(e.stdout, &r)
				}
				printReport(e.stdout, &r)
				return nil
			}))
		},
	}
	df.register(show.Flags())
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var ldf dirFlags
	var f certified.ItemFilter
	var listJSON bool
	list := &cobra.Command{
		Use:   "list [--state S] [--recipient ACCOUNT] [--sender ADDR] [--json]",
		Short: "list certified items, oldest first: label, state, recipient, sender, deadline",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			return status(withOps(e, &ldf, "item list", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
				var items []*certified.Item
				if err := ops.Call(ctx, "item.list", f, &items); err != nil {
					return err
				}
				if listJSON {
					if items == nil {
						items = []*certified.Item{}
					}
					return writeJSON(e.stdout, items)
				}
				if len(items) == 0 {
					fmt.Fprintln(e.stdout, "no certified items")
					return nil
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "LABEL\tSTATE\tRECIPIENT\tSENDER\tPOSTED\tDEADLINE")
				for _, it := range items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Label, it.State, it.Recipient, orNone(it.Sender), stamp(it.Posted), stamp(it.Deadline))
				}
				return tw.Flush()
			}))
		},
	}
	ldf.register(list.Flags())
	list.Flags().StringVar(&f.State, "state", "", "only items in this `state` (notified, forwarded, released, refused, expired, deemed)")
	list.Flags().StringVar(&f.Recipient, "recipient", "", "only items for this `account` (recipient or holder)")
	list.Flags().StringVar(&f.Sender, "sender", "", "only items from this `address`")
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")
	return groupCmd("item", "certified items", list, show)
}

func newOutboxCmd(e *env) *cobra.Command {
	var ldf dirFlags
	var sent, asJSON bool
	list := &cobra.Command{
		Use:   "list [--sent] [--json]",
		Short: "the notices waiting to be sent, and the dead letters the outbox gave up on",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			return status(withOps(e, &ldf, "outbox list", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
				var list []notifier.Status
				if err := ops.Call(ctx, "outbox.list", node.OutboxListParams{Sent: sent}, &list); err != nil {
					return err
				}
				if asJSON {
					if list == nil {
						list = []notifier.Status{}
					}
					return writeJSON(e.stdout, list)
				}
				if len(list) == 0 {
					fmt.Fprintln(e.stdout, "the outbox is empty")
					return nil
				}
				printNotices(e.stdout, list, "")
				return nil
			}))
		},
	}
	ldf.register(list.Flags())
	list.Flags().BoolVar(&sent, "sent", false, "also list the notices already sent")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var rdf dirFlags
	var all bool
	retry := &cobra.Command{
		Use:   "retry (ID... | --all)",
		Short: "queue dead letters again, due now (after fixing what made them fail)",
		Args: func(c *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return usageError("give the IDs of dead letters (certmail outbox list) or --all")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return status(withOps(e, &rdf, "outbox retry", func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
				var res node.OutboxRetryResult
				if err := ops.Call(ctx, "outbox.retry", node.OutboxRetryParams{IDs: args, AllDead: all}, &res); err != nil {
					return err
				}
				if len(res.IDs) == 0 {
					fmt.Fprintln(e.stdout, "no dead letters")
					return nil
				}
				for _, id := range res.IDs {
					fmt.Fprintf(e.stdout, "queued again: %s\n", id)
				}
				if _, local := ops.(*admin.Local); local {
					fmt.Fprintln(e.stdout, "(the server is not running: they are sent when it starts)")
				}
				return nil
			}))
		},
	}
	rdf.register(retry.Flags())
	retry.Flags().BoolVar(&all, "all", false, "every dead letter")
	return groupCmd("outbox", "notices to senders and webhooks", list, retry)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// stamp prints a time as the reports do: UTC, to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func printReport(w io.Writer, r *certified.Report) {
	it := r.Item
	fmt.Fprintf(w, "item %s: %s\n", it.Label, it.State)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, v)
		}
	}
	sender := it.Sender
	if it.SenderAuth != "" {
		sender += " (" + it.SenderAuth + ")"
	} else if sender != "" {
		sender += " (not authenticated: no notices by mail)"
	}
	row("sender", sender)
	row("submitter", it.Submitter)
	row("recipient", it.Recipient)
	if len(it.Holders) > 1 || len(it.Holders) == 1 && it.Holders[0] != it.Recipient {
		row("holders", strings.Join(it.Holders, ", "))
	}
	row("external", strings.Join(it.External, ", "))
	row("from", it.From)
	row("subject", it.Subject)
	row("hash", it.Hash)
	row("posted", stamp(it.Posted))
	row("deadline", fmt.Sprintf("%s (on expiry: %s)", stamp(it.Deadline), it.OnExpiry))
	if !it.Decided.IsZero() {
		row("decided", stamp(it.Decided))
	}
	if it.Signer != "" {
		row("signed by", it.Signer+" ("+it.Custody+")")
	}
	tw.Flush()

	fmt.Fprintf(w, "\nhistory (%d evidence records; certmail evidence %s for the bundle):\n", len(r.Events), it.Label)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ev := range r.Events {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", ev.Seq, stamp(ev.Time), ev.Type, eventSummary(ev.Data))
	}
	tw.Flush()

	if len(r.Refused) == 0 {
		fmt.Fprintln(w, "\nrefused CODs: none")
	} else {
		fmt.Fprintf(w, "\nrefused CODs (%d):\n", len(r.Refused))
		for _, a := range r.Refused {
			fmt.Fprintf(w, "  %s  from %s: %s\n", stamp(a.Time), a.Account, a.Reason)
		}
	}
	if len(r.Notices) == 0 {
		fmt.Fprintln(w, "\nnotices: none")
		return
	}
	fmt.Fprintf(w, "\nnotices (%d):\n", len(r.Notices))
	printNotices(w, r.Notices, it.Label)
}

// eventSummary is a record's data in one line: who did what, without the
// COD or the salt.
func eventSummary(d evidence.EventData) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("sender", d.Sender)
	add("recipient", d.Recipient)
	add("alternate", d.Alternate)
	add("signer", d.Signer)
	add("custody", d.Custody)
	add("actor", d.Actor)
	if !d.Deadline.IsZero() {
		add("deadline", stamp(d.Deadline))
	}
	if d.Reason != "" {
		parts = append(parts, fmt.Sprintf("reason=%q", d.Reason))
	}
	return strings.Join(parts, " ")
}

// printNotices lists notices, one block each; label, if set, is cut from
// the IDs (they all name it).
func printNotices(w io.Writer, list []notifier.Status, label string) {
	for _, n := range list {
		to := strings.Join(n.To, ", ")
		if n.Kind == notifier.KindWebhook {
			to = "webhook " + n.URL
		}
		id := n.ID
		if label != "" {
			id = strings.Replace(id, label, "…", 1)
		}
		fmt.Fprintf(w, "  %s  %s to %s", id, n.State, to)
		if n.Subject != "" {
			fmt.Fprintf(w, " %q", n.Subject)
		}
		fmt.Fprintln(w)
		switch n.State {
		case notifier.StateSent:
			fmt.Fprintf(w, "      sent %s, queued %s, %d failed attempt(s) before\n", stamp(n.Sent), stamp(n.Enqueued), n.Attempts)
		case notifier.StateDead:
			fmt.Fprintf(w, "      given up %s after %d attempt(s), queued %s (certmail outbox retry %s)\n", stamp(n.Died), n.Attempts, stamp(n.Enqueued), n.ID)
		case notifier.StateWaiting:
			fmt.Fprintf(w, "      queued %s; no relay is configured (docs/operations.md, \"Relay\")\n", stamp(n.Enqueued))
		default:
			fmt.Fprintf(w, "      queued %s, next try %s, %d failed attempt(s)\n", stamp(n.Enqueued), stamp(n.Due), n.Attempts)
		}
		if n.LastError != "" && n.State != notifier.StateWaiting {
			fmt.Fprintf(w, "      last error: %s\n", n.LastError)
		}
	}
}
