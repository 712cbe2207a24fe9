package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

func cmdUser(args []string, e *env) int {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, "usage: certmail user add|del|passwd|list [NAME] [--data DIR] [--config FILE] [--password-stdin]")
		return exitUsage
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("user "+sub, e)
	var df dirFlags
	df.register(fs)
	var pwStdin bool
	if sub == "add" || sub == "passwd" {
		fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
	}
	var keepKey bool
	if sub == "passwd" {
		fs.BoolVar(&keepKey, "keep-key", false, "as the account's owner: give the old password first, and keep the signing key (re-sealed)")
	}
	var pubkey string
	if sub == "add" {
		fs.StringVar(&pubkey, "pubkey", "", "also register this public key `file` (PEM) for signing CODs")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	wantArgs := 1
	switch sub {
	case "add", "del", "passwd":
	case "list":
		wantArgs = 0
	default:
		fmt.Fprintf(e.stderr, "certmail user: unknown subcommand %q (want add, del, passwd or list)\n", sub)
		return exitUsage
	}
	if len(pos) != wantArgs {
		if wantArgs == 0 {
			fmt.Fprintf(e.stderr, "usage: certmail user %s\n", sub)
		} else {
			fmt.Fprintf(e.stderr, "usage: certmail user %s NAME\n", sub)
		}
		return exitUsage
	}
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
				err = ops.Call(ctx, "key.register", KeyRegisterParams{Account: pos[0], PEM: string(pem)}, nil)
			}
		}
	case "del":
		err = ops.DeleteUser(ctx, pos[0])
	case "passwd":
		if keepKey {
			err = ops.Call(ctx, "user.passwd.own", OwnPasswordParams{Account: pos[0], Old: oldPassword, New: password}, nil)
		} else {
			err = ops.SetPassword(ctx, pos[0], password)
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
