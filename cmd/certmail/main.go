package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"certmail/buildinfo"
	"certmail/config"
)

func main() {
	privateFiles()
	os.Exit(run(os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}))
}

// env is what a command may touch of the process, so tests and commands
// do not reach for globals.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// Exit codes. Those of deliver follow sysexits.h, as MTA pipe transports
// expect.
const (
	exitOK        = 0
	exitFailure   = 1
	exitUsage     = 2
	exitDataErr   = 65 // EX_DATAERR: the message is refused as it is
	exitNoUser    = 67 // EX_NOUSER
	exitUnavail   = 69 // EX_UNAVAILABLE: domain not served, bad address
	exitCantCreat = 73 // EX_CANTCREAT: the recipient's mailbox is full (quota)
	exitTempFail  = 75 // EX_TEMPFAIL: try again later
)

// exitStatus ends a command with an exit code once the command has
// printed what went wrong itself.
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// status is a command's exit code as the error its RunE returns.
func status(code int) error {
	if code == exitOK {
		return nil
	}
	return exitStatus(code)
}

// usageError is a command line that cannot be run as given: run prints it
// with a pointer to the command's --help and exits 2. Errors cobra finds
// itself (an unknown flag or command, a wrong number of arguments) are
// treated alike.
func usageError(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// run executes the command line args and returns the exit code: 0 on
// success and for --help, 2 for a usage error, else the command's own.
func run(args []string, e *env) int {
	root := newRoot(e)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintf(e.stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
	return exitUsage
}

// Command groups, in the order the top-level help lists them.
var groups = []*cobra.Group{
	{ID: "store", Title: "The mail store:"},
	{ID: "recipient", Title: "Certified mail, the recipient's side:"},
	{ID: "sender", Title: "Certified mail, the sender's side and evidence (docs/verify.md):"},
	{ID: "ops", Title: "Operations (docs/operations.md):"},
}

const rootFooter = `The data directory is --data, else $` + config.EnvData + `, else the config file's
data, else ` + config.DefaultData + ` (relative to the current directory). Only serve
and user add create a store there (and say where); the other commands
refuse a directory without one, naming the path they looked at. Commands
other than serve work whether or not the server runs (they go through its
admin socket if it does). With --store URL (or the config's [store] url)
the store is a PostgreSQL database that several nodes serve; commands then
open it directly (docs/scale-out.md).
Defaults: IMAP ` + config.DefaultIMAP + `, LMTP ` + config.DefaultLMTP + `, HTTP ` + config.DefaultHTTP + `.
Durations (72h, 7d, 1d12h) are Go's units and days.

Run 'certmail COMMAND --help' for a command's flags; 'certmail completion
bash' writes shell completion.
`

// newRoot builds the command tree: every command's name, flags, help
// and arguments are defined once, here and in the new*Cmd functions.
func newRoot(e *env) *cobra.Command {
	// The help lists commands in the order they are added (grouped by
	// side), not alphabetically.
	cobra.EnableCommandSorting = false
	root := &cobra.Command{
		Use:   "certmail",
		Short: "a mail store (IMAP, LMTP) with certified mail",
		// For the manual page; --help prints the overview.
		Long: `certmail is one binary: certmail serve runs the store, IMAP, LMTP, HTTP
(the sender API, autoconfig, /healthz) and the admin socket in one process
on one data directory; the other commands operate on that directory.

` + rootFooter,
		Version:       buildinfo.Read().String(),
		SilenceErrors: true,
		SilenceUsage:  true,
		// Unknown commands are refused by cobra (legacyArgs); with none,
		// the overview goes to stderr with the usage error code.
		RunE: func(c *cobra.Command, args []string) error {
			fmt.Fprint(e.stderr, overview(c))
			return exitStatus(exitUsage)
		},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddGroup(groups...)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add("store", newServeCmd(e), newUserCmd(e), newDeliverCmd(e), newConfigCmd(e))
	add("recipient", newKeygenCmd(e), newKeyCmd(e), newCheckCmd(e), newPolicyCmd(e), newForwardCmd(e),
		newShowCmd(e), newUnreadCmd(e), newSignCmd(e))
	add("sender", newItemCmd(e), newTokenCmd(e), newEvidenceCmd(e), newVerifyCmd(e))
	add("ops", newOutboxCmd(e), newTLSCmd(e), newBackupCmd(e), newRestoreCmd(e), newMigrateCmd(e), newVersionCmd(e))
	root.AddCommand(newManCmd(e))
	// Made now rather than on Execute, so that the tree a test walks is
	// the one a user runs.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	walk(root, func(c *cobra.Command) {
		// The Use lines name the flags that matter; every flag is listed
		// under Flags.
		c.DisableFlagsInUseLine = true
	})
	defaultHelp := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c == root {
			fmt.Fprint(c.OutOrStdout(), overview(c))
			return
		}
		defaultHelp(c, args)
	})
	return root
}

// walk calls fn on c and every command below it.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, s := range c.Commands() {
		walk(s, fn)
	}
}

// overview is the top-level help: every runnable command's synopsis by
// group, from the tree itself, then the root's flags.
func overview(root *cobra.Command) string {
	var b strings.Builder
	intro, _, _ := strings.Cut(root.Long, "\n\n")
	fmt.Fprintf(&b, "certmail: %s.\n\n%s\n\nUsage:\n  certmail COMMAND [ARGUMENTS] [FLAGS]\n", root.Short, intro)
	const col, width = 31, 79
	line := func(c *cobra.Command) {
		syn := wrap(strings.TrimPrefix(c.Parent().CommandPath()+" ", root.Name()+" ")+c.Use, width-2, "\n        ")
		short := wrap(c.Short, width-col, "\n"+strings.Repeat(" ", col))
		if last := syn[strings.LastIndex(syn, "\n")+1:]; len(last) < col-3 {
			fmt.Fprintf(&b, "  %s%s%s\n", syn, strings.Repeat(" ", col-2-len(last)), short)
		} else {
			fmt.Fprintf(&b, "  %s\n%s%s\n", syn, strings.Repeat(" ", col), short)
		}
	}
	var list func(c *cobra.Command)
	list = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.Name() != "help" {
			return
		}
		// A group's subcommands each get a line; completion's one.
		if c.HasAvailableSubCommands() && c.Name() != "completion" {
			for _, s := range c.Commands() {
				list(s)
			}
			return
		}
		line(c)
	}
	for _, g := range append(groups, &cobra.Group{Title: "Other:"}) {
		fmt.Fprintf(&b, "\n%s\n", g.Title)
		for _, c := range root.Commands() {
			if c.GroupID == g.ID {
				list(c)
			}
		}
	}
	fmt.Fprintf(&b, "\nFlags:\n%s\n%s", root.LocalFlags().FlagUsages(), rootFooter)
	return b.String()
}

// wrap breaks s at spaces into lines of at most width bytes (a word
// longer than that stays whole), joined by sep.
func wrap(s string, width int, sep string) string {
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(w) > width {
			lines = append(lines, cur)
			cur = ""
		}
		if cur != "" {
			cur += " "
		}
		cur += w
	}
	return strings.Join(append(lines, cur), sep)
}

// exactArgs wants n positional arguments, named in the error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != len(names) {
			if len(names) == 0 {
				return usageError("unexpected argument %q", args[0])
			}
			return usageError("want %d argument(s) (%s), got %d", len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// groupCmd is a command that only holds subcommands: without one, or
// with an unknown one, it is a usage error (cobra would print the help
// and exit 0).
func groupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				var names []string
				for _, s := range c.Commands() {
					names = append(names, s.Name())
				}
				return usageError("unknown subcommand %q (want %s)", args[0], strings.Join(names, ", "))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var names []string
			for _, s := range c.Commands() {
				names = append(names, s.Name())
			}
			return usageError("missing subcommand (want %s)", strings.Join(names, ", "))
		},
	}
	c.AddCommand(subs...)
	return c
}

// durationFlag makes config.Duration (Go's units and days, 1d, 7d) a
// flag value.
type durationFlag struct{ d *config.Duration }

func (f durationFlag) String() string {
	if *f.d == 0 {
		return ""
	}
	return f.d.String()
}
func (f durationFlag) Set(s string) error { return f.d.Set(s) }
func (f durationFlag) Type() string       { return "duration" }

var _ pflag.Value = durationFlag{}

// newManCmd writes the manual pages, from the same tree as --help.
func newManCmd(e *env) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "man --dir DIR",
		Short: "write the manual pages (certmail.1, certmail-user-add.1, ...) into DIR",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				fmt.Fprintf(e.stderr, "certmail man: %v\n", err)
				return exitStatus(exitFailure)
			}
			root := c.Root()
			// The pages should not depend on when or where they were made.
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "CERTMAIL", Section: "1", Source: "certmail", Manual: "certmail manual"}
			if err := doc.GenManTree(root, hdr, dir); err != nil {
				fmt.Fprintf(e.stderr, "certmail man: %v\n", err)
				return exitStatus(exitFailure)
			}
			fmt.Fprintf(e.stdout, "wrote the manual pages into %s\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "`directory` to write the pages to (e.g. /usr/local/share/man/man1)")
	c.MarkFlagRequired("dir")
	return c
}
