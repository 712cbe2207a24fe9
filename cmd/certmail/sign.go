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

	"certmail/admin"
	"certmail/certified"
	"certmail/codclient"
	"certmail/config"
	"certmail/receipts"
)

// cmdKeygen writes a recipient key pair: FILE (private, 0600) and
// FILE.pub (public), both PEM.
func cmdKeygen(args []string, e *env) int {
	fs := newFlagSet("keygen", e)
	out := fs.String("out", "certmail-key.pem", "private key `file`; the public key goes to FILE.pub")
	if _, err := parseInterspersed(fs, args); err != nil {
		return exitUsage
	}
	if _, err := os.Stat(*out); err == nil {
		fmt.Fprintf(e.stderr, "certmail: %s exists; not overwriting a key\n", *out)
		return exitFailure
	}
	priv, err := receipts.GenerateKey()
	if err == nil {
		err = writeKeyPair(*out, priv)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: keygen: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "private key: %s\npublic key:  %s.pub\nkey id:      %s\n", *out, *out, receipts.KeyID(priv.Public().(ed25519PublicKey)))
	return exitOK
}

func cmdKey(args []string, e *env) int {
	if len(args) > 0 && args[0] == "show" {
		return cmdKeyShow(args[1:], e)
	}
	if len(args) == 0 || (args[0] != "register" && args[0] != "list") {
		fmt.Fprintln(e.stderr, "usage: certmail key register --user NAME --pubkey FILE | key list --user NAME | key show --gateway [--jwk]  [--data DIR] [--config FILE]")
		return exitUsage
	}
	sub := args[0]
	fs := newFlagSet("key "+sub, e)
	var df dirFlags
	df.register(fs)
	user := fs.String("user", "", "account `name`")
	pubFile := fs.String("pubkey", "", "public key `file` (PEM, from certmail keygen)")
	if _, err := parseInterspersed(fs, args[1:]); err != nil {
		return exitUsage
	}
	if *user == "" || (sub == "register" && *pubFile == "") {
		fmt.Fprintln(e.stderr, "certmail: key: --user is required, and --pubkey for register")
		return exitUsage
	}
	return withOps(e, &df, "key "+sub, func(ctx context.Context, ops admin.Ops, _ *config.Config) error {
		switch sub {
		case "register":
			pem, err := os.ReadFile(*pubFile)
			if err != nil {
				return err
			}
			var kid string
			if err := ops.Call(ctx, "key.register", KeyRegisterParams{Account: *user, PEM: string(pem)}, &kid); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "registered key %s for %s\n", kid, *user)
		case "list":
			var keys []certified.KeyRecord
			if err := ops.Call(ctx, "key.list", KeyListParams{Account: *user}, &keys); err != nil {
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

// cmdSign logs in over IMAP, finds certified-item stubs, shows what it
// will sign, signs CODs (or refusals) with the recipient's own key and
// hands them in by APPEND.
func cmdSign(args []string, e *env) int {
	fs := newFlagSet("sign", e)
	addr := fs.String("imap", "127.0.0.1:1143", "IMAP server `host:port`")
	user := fs.String("user", "", "IMAP user `name`")
	keyFile := fs.String("key", "certmail-key.pem", "private key `file` (from certmail keygen)")
	label := fs.String("label", "", "sign only the item with this `label`")
	all := fs.Bool("all", false, "sign every stub found")
	refuse := fs.Bool("refuse", false, "sign refusals instead of certificates of delivery")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	pwStdin := fs.Bool("password-stdin", false, "read the IMAP password from the first line of stdin")
	useTLS := fs.Bool("tls", false, "use implicit TLS (IMAPS)")
	startTLS := fs.Bool("starttls", false, "use STARTTLS")
	mailboxName := fs.String("mailbox", "INBOX", "mailbox to look for stubs in")
	if _, err := parseInterspersed(fs, args); err != nil {
		return exitUsage
	}
	if *user == "" || (*label == "" && !*all) {
		fmt.Fprintln(e.stderr, "usage: certmail sign --imap HOST:PORT --user NAME [--key FILE] (--label L | --all) [--refuse] [--yes]")
		return exitUsage
	}
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

// cmdKeyShow prints the gateway's public key, with which anyone checks the
// evidence it signs: PEM (SubjectPublicKeyInfo) or, with --jwk, a JWK.
func cmdKeyShow(args []string, e *env) int {
	fs := newFlagSet("key show", e)
	var df dirFlags
	df.register(fs)
	gateway := fs.Bool("gateway", false, "show the gateway's signing key")
	asJWK := fs.Bool("jwk", false, "print a JWK instead of PEM")
	if _, err := parseInterspersed(fs, args); err != nil {
		return exitUsage
	}
	if !*gateway {
		fmt.Fprintln(e.stderr, "usage: certmail key show --gateway [--jwk] [--data DIR]")
		return exitUsage
	}
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
	if *asJWK {
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
