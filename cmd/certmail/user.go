package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"certmail/mailbox"
	"certmail/node"
)

func newUserCmd(e *env) *cobra.Command {
	sub := func(name, use, short string, args cobra.PositionalArgs) (*cobra.Command, *userFlags) {
		uf := &userFlags{}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  args,
			RunE: func(c *cobra.Command, args []string) error {
				return status(runUser(e, name, args, uf))
			},
		}
		uf.register(c.Flags())
		return c, uf
	}
	add, af := sub("add", "add NAME [--password-stdin] [--pubkey FILE]",
		"create an account (asks for the password twice); creates the store if there is none", exactArgs("NAME"))
	add.Flags().BoolVar(&af.pwStdin, "password-stdin", false, "read the password from the first line of stdin")
	add.Flags().StringVar(&af.pubkey, "pubkey", "", "also register this public key `file` (PEM) for signing CODs")
	passwd, pf := sub("passwd", "passwd NAME [--password-stdin] [--keep-key]", "change an account's password", exactArgs("NAME"))
	passwd.Flags().BoolVar(&pf.pwStdin, "password-stdin", false, "read the password from the first line of stdin (with --keep-key: the old one, then the new)")
	passwd.Flags().BoolVar(&pf.keepKey, "keep-key", false, "as the account's owner: give the old password first, and keep the signing key (re-sealed)")
	del, _ := sub("del", "del NAME", "delete an account and all its mail; its pending certified items end as non-delivery (senders are told), its keys and policies go", exactArgs("NAME"))
	list, _ := sub("list", "list", "list accounts", exactArgs())
	quota, qf := sub("quota", "quota NAME [--storage SIZE] [--messages N]",
		"show an account's quota usage and limits, or set them (0 or none: no limit; default: the configuration's limits.quota_*)", exactArgs("NAME"))
	quota.Flags().StringVar(&qf.storage, "storage", "", "storage limit: a `size` (1GiB, 500MB), 0 or none, or default")
	quota.Flags().StringVar(&qf.messages, "messages", "", "message limit: a `count`, 0 or none, or default")
	return groupCmd("user", "manage accounts", add, passwd, del, list, quota)
}

// userFlags are the flags of the user subcommands.
type userFlags struct {
	df      dirFlags
	pwStdin bool
	keepKey bool
	pubkey  string
	// quota
	storage, messages string
}

func (u *userFlags) register(fs *pflag.FlagSet) { u.df.register(fs) }

func runUser(e *env, sub string, pos []string, uf *userFlags) int {
	df, pwStdin, keepKey, pubkey := &uf.df, uf.pwStdin, uf.keepKey, uf.pubkey
	cfg, err := df.load()
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: %v\n", err)
		return exitFailure
	}

	var password, oldPassword string
	if keepKey {
		if oldPassword, err = readPasswordPrompt(e, pwStdin, "Old password: "); err != nil {
			fmt.Fprintf(e.stderr, "certmail: %v\n", err)
			return exitFailure
		}
	}
	if sub == "add" || sub == "passwd" {
		// Read the password before touching the store: a prompt must not
		// hold the data directory (or a server connection) open.
		if password, err = readPassword(e, pwStdin); err != nil {
			fmt.Fprintf(e.stderr, "certmail: %v\n", err)
			return exitFailure
		}
	}

	var qp node.QuotaParams
	if sub == "quota" {
		qp.Account = pos[0]
		if qp.Storage, err = parseQuotaStorage(uf.storage); err == nil {
			qp.Messages, err = parseQuotaMessages(uf.messages)
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "certmail: user quota: %v\n", err)
			return exitUsage
		}
	}

	ctx := context.Background()
	ops, err := connectOps(ctx, cfg, e, sub == "add")
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: %v\n", err)
		return exitFailure
	}
	switch sub {
	case "add":
		err = ops.AddUser(ctx, pos[0], password)
		if err == nil && pubkey != "" {
			var pem []byte
			if pem, err = os.ReadFile(pubkey); err == nil {
				err = ops.Call(ctx, "key.register", node.KeyRegisterParams{Account: pos[0], PEM: string(pem)}, nil)
			}
		}
	case "del":
		err = ops.DeleteUser(ctx, pos[0])
	case "passwd":
		if keepKey {
			err = ops.Call(ctx, "user.passwd.own", node.OwnPasswordParams{Account: pos[0], Old: oldPassword, New: password}, nil)
		} else {
			err = ops.SetPassword(ctx, pos[0], password)
		}
	case "quota":
		var q node.QuotaResult
		if err = ops.Call(ctx, "user.quota", qp, &q); err == nil {
			acct, _ := mailbox.NormalizeAccount(pos[0])
			printQuota(e, acct, q)
		}
	case "list":
		var names []string
		if names, err = ops.ListUsers(ctx); err == nil {
			for _, n := range names {
				fmt.Fprintln(e.stdout, n)
			}
		}
	}
	if cerr := ops.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: user %s: %v\n", sub, err)
		return exitFailure
	}
	return exitOK
}

// readPassword reads one line of stdin (--password-stdin), or prompts
// twice on a terminal.
func readPassword(e *env, fromStdin bool) (string, error) {
	if fromStdin {
		return stdinPassword(e)
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("stdin is not a terminal; use --password-stdin to read the password from it")
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(e.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		return string(b), nil
	}
	pw, err := ask("Password: ")
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	again, err := ask("Again: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("passwords do not match")
	}
	return pw, nil
}

// stdinPassword reads one line of stdin without reading past it, so that
// a second password (user passwd --keep-key) is still there to read.
func stdinPassword(e *env) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := e.stdin.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
	}
	pw := strings.TrimRight(string(line), "\r")
	if pw == "" {
		return "", errors.New("empty password on stdin")
	}
	return pw, nil
}

// readPasswordPrompt reads one password, asked once on a terminal.
func readPasswordPrompt(e *env, fromStdin bool, prompt string) (string, error) {
	if fromStdin {
		return stdinPassword(e)
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("stdin is not a terminal; use --password-stdin to read the passwords from it")
	}
	fmt.Fprint(e.stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	return string(b), nil
}
