package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/spf13/cobra"

	"certmail/admin"
	"certmail/certified"
	"certmail/codclient"
	"certmail/config"
	"certmail/node"
	"certmail/receipts"
)

// cmdKeygen writes a recipient key pair: FILE (private, 0600) and
// FILE.pub (public), both PEM.
func newKeygenCmd(e *env) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "keygen [--out FILE]",
		Short: "write a key pair for signing CODs: FILE (private) and FILE.pub",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			return status(runKeygen(e, out))
		},
	}
	c.Flags().StringVar(&out, "out", "certmail-key.pem", "private key `file`; the public key goes to FILE.pub")
	return c
}

func runKeygen(e *env, out string) int {
	if _, err := os.Stat(out); err == nil {
		fmt.Fprintf(e.stderr, "certmail: %s exists; not overwriting a key\n", out)
		return exitFailure
	}
	priv, err := receipts.GenerateKey()
	if err == nil {
		err = writeKeyPair(out, priv)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: keygen: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "private key: %s\npublic key:  %s.pub\nkey id:      %s\n", out, out, receipts.KeyID(priv.Public().(ed25519PublicKey)))
	return exitOK
}

func newKeyCmd(e *env) *cobra.Command {
	sub := func(name, use, short string) *cobra.Command {
		var df dirFlags
		var user, pubFile string
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  exactArgs(),
			RunE: func(c *cobra.Command, args []string) error {
				return status(runKey(e, &df, name, user, pubFile))
			},
		}
		df.register(c.Flags())
		c.Flags().StringVar(&user, "user", "", "account `name`")
		c.MarkFlagRequired("user")
		if name == "register" {
			c.Flags().StringVar(&pubFile, "pubkey", "", "public key `file` (PEM, from certmail keygen)")
			c.MarkFlagRequired("pubkey")
		}
		return c
	}
	return groupCmd("key", "recipients' signing keys and the gateway's key",
		sub("register", "register --user NAME --pubkey FILE", "register a public key for signing CODs"),
		sub("list", "list --user NAME", "list an account's keys (active and retired)"),
		newKeyShowCmd(e))
}

func runKey(e *env, df *dirFlags, sub, user, pubFile string) int {
	return withOps(e, df, "key "+sub, func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		switch sub {
		case "register":
			pem, err := os.ReadFile(pubFile)
			if err != nil {
				return err
			}
			var kid string
			if err := ops.Call(ctx, "key.register", node.KeyRegisterParams{Account: user, PEM: string(pem)}, &kid); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "registered key %s for %s\n", kid, user)
		case "list":
			var keys []certified.KeyRecord
			if err := ops.Call(ctx, "key.list", node.KeyListParams{Account: user}, &keys); err != nil {
				return err
			}
			for _, k := range keys {
				state := "active"
				if !k.Retired.IsZero() {
					state = "retired " + k.Retired.Format(time.RFC3339)
				}
				fmt.Fprintf(e.stdout, "%s  %-14s  created %s  %s\n", k.KeyID, k.Custody, k.Created.Format(time.RFC3339), state)
			}
		}
		return nil
	})
}

func newSignCmd(e *env) *cobra.Command {
	var f signFlags
	c := &cobra.Command{
		Use:   "sign --imap HOST:PORT --user NAME [--key FILE] (--label L | --all) [--refuse] [--yes] [--password-stdin] [--tls | --starttls]",
		Short: "sign certificates of delivery (or refusals) for stubs found over IMAP and hand them in",
		Long: `Logs in over IMAP, finds certified-item stubs, shows what it will sign,
signs certificates of delivery (or, with --refuse, refusals) with the
recipient's own key and hands them in by APPEND. It asks before each one
unless --yes; with --password-stdin the password is stdin's first line and
the answers, if any, the following lines.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if f.label == "" && !f.all {
				return usageError("give --label L or --all")
			}
			return status(runSign(e, &f))
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.addr, "imap", "127.0.0.1:1143", "IMAP server `host:port`")
	fs.StringVar(&f.user, "user", "", "IMAP user `name`")
	fs.StringVar(&f.keyFile, "key", "certmail-key.pem", "private key `file` (from certmail keygen)")
	fs.StringVar(&f.label, "label", "", "sign only the item with this `label`")
	fs.BoolVar(&f.all, "all", false, "sign every stub found")
	fs.BoolVar(&f.refuse, "refuse", false, "sign refusals instead of certificates of delivery")
	fs.BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
	fs.BoolVar(&f.pwStdin, "password-stdin", false, "read the IMAP password from the first line of stdin")
	fs.BoolVar(&f.useTLS, "tls", false, "use implicit TLS (IMAPS)")
	fs.BoolVar(&f.startTLS, "starttls", false, "use STARTTLS")
	fs.StringVar(&f.mailbox, "mailbox", "INBOX", "`mailbox` to look for stubs in")
	c.MarkFlagRequired("user")
	c.MarkFlagsMutuallyExclusive("tls", "starttls")
	c.MarkFlagsMutuallyExclusive("label", "all")
	return c
}

type signFlags struct {
	addr, user, keyFile, label, mailbox string
	all, refuse, yes, pwStdin           bool
	useTLS, startTLS                    bool
}

// runSign logs in over IMAP, finds certified-item stubs, shows what it
// will sign, signs CODs (or refusals) with the recipient's own key and
// hands them in by APPEND.
func runSign(e *env, f *signFlags) int {
	addr, user, keyFile, label, all := &f.addr, &f.user, &f.keyFile, &f.label, &f.all
	refuse, yes, pwStdin, useTLS, startTLS, mailboxName := &f.refuse, &f.yes, &f.pwStdin, &f.useTLS, &f.startTLS, &f.mailbox
	_ = all
	fail := func(err error) int {
		fmt.Fprintf(e.stderr, "certmail: sign: %v\n", err)
		return exitFailure
	}
	pem, err := os.ReadFile(*keyFile)
	if err != nil {
		return fail(err)
	}
	key, err := receipts.ParsePrivateKeyPEM(pem)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", *keyFile, err))
	}
	// Logging in to an existing account: one prompt, not the "Again:" of
	// a new password. With --password-stdin the password is the first
	// line and the answers, if any, the following ones (stdinPassword
	// reads no further than its line).
	password, err := readPasswordPrompt(e, *pwStdin, fmt.Sprintf("IMAP password for %s: ", *user))
	if err != nil {
		return fail(err)
	}
	var c *imapclient.Client
	switch {
	case *useTLS:
		c, err = imapclient.DialTLS(*addr, &imapclient.Options{TLSConfig: &tls.Config{}})
	case *startTLS:
		c, err = imapclient.DialStartTLS(*addr, &imapclient.Options{TLSConfig: &tls.Config{}})
	default:
		c, err = imapclient.DialInsecure(*addr, nil)
	}
	if err != nil {
		return fail(fmt.Errorf("connecting to %s: %w", *addr, err))
	}
	defer c.Close()
	if err := c.Login(*user, password).Wait(); err != nil {
		return fail(fmt.Errorf("logging in as %s: %w", *user, err))
	}
	found, err := codclient.FindStubs(c, *mailboxName, *label)
	if err != nil {
		return fail(err)
	}
	for _, sk := range found.Skipped {
		fmt.Fprintf(e.stdout, "message UID %d skipped (subject %q): %s\n", sk.UID, sk.Subject, sk.Reason)
	}
	stubs := found.Stubs
	if len(stubs) == 0 {
		msg := "no certified-item stubs found"
		if *label != "" {
			msg += " with label " + *label
		}
		if n := len(found.Skipped); n > 0 {
			msg += fmt.Sprintf(" (%d message(s) with a %s header are not stubs)", n, certified.LabelHeader)
		}
		return fail(errors.New(msg))
	}
	decision := receipts.DecisionCOD
	if *refuse {
		decision = receipts.DecisionRefusal
	}
	in := bufio.NewReader(e.stdin)
	failed, signed := 0, 0
	for _, st := range stubs {
		r := st.Request
		fmt.Fprintf(e.stdout, "item %s\n  gateway   %s\n  recipient %s\n  hash      %s\n  deadline  %s\n  subject   %s\n",
			r.Label, r.Gateway, r.Recipient, r.Hash, orNone(r.Deadline), st.Subject)
		if !*yes {
			fmt.Fprintf(e.stderr, "sign a %s for %s? [y/N] ", decision, r.Label)
			line, rerr := in.ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
				if rerr != nil && line == "" {
					fmt.Fprintln(e.stderr, "(no answer on stdin: --yes signs without asking)")
				}
				fmt.Fprintln(e.stdout, "  skipped")
				continue
			}
		}
		cod, err := codclient.Sign(key, st, decision, time.Now())
		if err != nil {
			fmt.Fprintf(e.stderr, "certmail: sign %s: %v\n", r.Label, err)
			failed++
			continue
		}
		if _, err := codclient.Submit(c, st, decision, cod); err != nil {
			fmt.Fprintf(e.stderr, "certmail: %v\n", err)
			failed++
			continue
		}
		fmt.Fprintf(e.stdout, "  %s signed and handed in\n", decision)
		signed++
	}
	c.Logout().Wait()
	fmt.Fprintf(e.stdout, "%d of %d stub(s) signed, %d failed; %d message(s) skipped as not stubs\n",
		signed, len(stubs), failed, len(found.Skipped))
	if failed > 0 {
		return exitFailure
	}
	return exitOK
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// newKeyShowCmd prints the gateway's public key, with which anyone checks the
// evidence it signs: PEM (SubjectPublicKeyInfo) or, with --jwk, a JWK.
func newKeyShowCmd(e *env) *cobra.Command {
	var df dirFlags
	var gateway, asJWK bool
	c := &cobra.Command{
		Use:   "show --gateway [--jwk]",
		Short: "print the gateway's public key (PEM or JWK), with which anyone checks the evidence it signs",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if !gateway {
				return usageError("give --gateway (the only key it shows)")
			}
			return status(runKeyShow(e, &df, asJWK))
		},
	}
	df.register(c.Flags())
	c.Flags().BoolVar(&gateway, "gateway", false, "show the gateway's signing key")
	c.Flags().BoolVar(&asJWK, "jwk", false, "print a JWK instead of PEM")
	return c
}

func runKeyShow(e *env, df *dirFlags, asJWK bool) int {
	cfg, err := df.load()
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: %v\n", err)
		return exitFailure
	}
	pemBytes, err := os.ReadFile(filepath.Join(cfg.Data, certified.GatewayKeyFile))
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: key show: %v (the key is made when the server first starts)\n", err)
		return exitFailure
	}
	priv, err := receipts.ParsePrivateKeyPEM(pemBytes)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: key show: %v\n", err)
		return exitFailure
	}
	pub := priv.Public().(ed25519PublicKey)
	if asJWK {
		b, err := json.MarshalIndent(receipts.PublicJWK(pub), "", "  ")
		if err != nil {
			fmt.Fprintf(e.stderr, "certmail: key show: %v\n", err)
			return exitFailure
		}
		fmt.Fprintln(e.stdout, string(b))
		return exitOK
	}
	out, err := receipts.MarshalPublicKeyPEM(pub)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: key show: %v\n", err)
		return exitFailure
	}
	e.stdout.Write(out)
	return exitOK
}
