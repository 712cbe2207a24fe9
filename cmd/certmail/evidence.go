package main

// Evidence and the sender API: `certmail token`, `certmail evidence` and
// `certmail verify` (issue 5). Token and evidence commands work whether or
// not the server runs (admin socket methods token.* and evidence.bundle);
// verify needs nothing but the files it is given.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"certmail/api"
	"certmail/certified"
	"certmail/node"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

func newTokenCmd(e *env) *cobra.Command {
	sub := func(name, use, short string, args cobra.PositionalArgs) (*cobra.Command, *tokenFlags) {
		tf := &tokenFlags{}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  args,
			RunE: func(c *cobra.Command, args []string) error {
				if name == "add" {
					if err := api.CheckTokenName(args[0]); err != nil {
						return usageError("%v", err)
					}
				}
				return status(runToken(e, name, args, tf))
			},
		}
		tf.df.register(c.Flags())
		return c, tf
	}
	add, af := sub("add", "add NAME [--operator] [--sender ADDR]...", "create an HTTP API token and print it (shown only once)", exactArgs("NAME"))
	add.Flags().BoolVar(&af.operator, "operator", false, "an operator token, which may read every item")
	add.Flags().StringArrayVar(&af.senders, "sender", nil, "an `address` the token's holder owns: its items' notices are mailed to it (repeat for more)")
	list, _ := sub("list", "list", "list HTTP API tokens", exactArgs())
	del, _ := sub("del", "del NAME", "delete an HTTP API token", exactArgs("NAME"))
	return groupCmd("token", "HTTP API tokens of the sender API", add, list, del)
}

type tokenFlags struct {
	df       dirFlags
	operator bool
	senders  []string
}

func runToken(e *env, sub string, pos []string, tf *tokenFlags) int {
	df, operator, senders := &tf.df, tf.operator, tf.senders
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
	switch sub {
	case "add":
		var res node.TokenAddResult
		if err := ops.Call(ctx, "token.add", node.TokenAddParams{Name: pos[0], Operator: operator, Senders: senders}, &res); err != nil {
			fmt.Fprintf(e.stderr, "certmail: token add: %v\n", err)
			return exitFailure
		}
		// Only the token on stdout, so that `TOKEN=$(certmail token add x)`
		// works; the advice goes to stderr.
		fmt.Fprintln(e.stdout, res.Token)
		fmt.Fprintf(e.stderr, "certmail: token %q created; it is shown only now (send it as Authorization: Bearer <token>)\n", pos[0])
	case "list":
		var list []api.TokenInfo
		if err := ops.Call(ctx, "token.list", nil, &list); err != nil {
			fmt.Fprintf(e.stderr, "certmail: token list: %v\n", err)
			return exitFailure
		}
		for _, t := range list {
			kind := "sender"
			if t.Operator {
				kind = "operator"
			}
			fmt.Fprintf(e.stdout, "%s\t%s\t%s\t%s\n", t.Name, kind, t.Created.UTC().Format(time.RFC3339), strings.Join(t.Senders, ","))
		}
	case "del":
		if err := ops.Call(ctx, "token.del", node.TokenNameParams{Name: pos[0]}, nil); err != nil {
			fmt.Fprintf(e.stderr, "certmail: token del: %v\n", err)
			return exitFailure
		}
	}
	return exitOK
}

const evidenceLong = `Writes the item's evidence bundle (JSON) to stdout or FILE; --gateway-key-out
also writes the gateway's public key (PEM) for certmail verify --gateway-key.
`

func newEvidenceCmd(e *env) *cobra.Command {
	var df dirFlags
	var out, keyOut string
	c := &cobra.Command{
		Use:   "evidence [LABEL] [-o FILE] [--gateway-key-out FILE]",
		Short: "write an item's evidence bundle (JSON) and/or the gateway's public key",
		Long:  evidenceLong,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 || (len(args) == 0 && keyOut == "") {
				return usageError("want a LABEL, --gateway-key-out FILE or both")
			}
			if len(args) == 1 && !receipts.ValidLabel(args[0]) {
				return usageError("%q is not a label (cm- and 26 characters)", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return status(runEvidence(e, &df, args, out, keyOut))
		},
	}
	df.register(c.Flags())
	c.Flags().StringVarP(&out, "output", "o", "", "write the bundle to `file` instead of stdout")
	c.Flags().StringVar(&keyOut, "gateway-key-out", "", "write the gateway's public key (PEM) to `file`")
	return c
}

func runEvidence(e *env, df *dirFlags, pos []string, out, keyOut string) int {
	cfg, err := df.load()
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: %v\n", err)
		return exitFailure
	}
	if keyOut != "" {
		if err := writeGatewayKey(cfg.Data, keyOut); err != nil {
			fmt.Fprintf(e.stderr, "certmail: evidence: %v\n", err)
			return exitFailure
		}
	}
	if len(pos) == 0 {
		return exitOK
	}
	label := pos[0]
	ctx := context.Background()
	ops, err := connectOps(ctx, cfg, e, false)
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: %v\n", err)
		return exitFailure
	}
	defer ops.Close()
	var b evidence.Bundle
	if err := ops.Call(ctx, "evidence.bundle", node.BundleParams{Label: label}, &b); err != nil {
		fmt.Fprintf(e.stderr, "certmail: evidence %s: %v\n", label, err)
		return exitFailure
	}
	data, err := b.Marshal()
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail: evidence %s: %v\n", label, err)
		return exitFailure
	}
	if out == "" {
		if _, err := e.stdout.Write(data); err != nil {
			fmt.Fprintf(e.stderr, "certmail: evidence: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	// The bundle names the sender and recipient: theirs to hand out.
	if err := os.WriteFile(out, data, 0o600); err != nil {
		fmt.Fprintf(e.stderr, "certmail: evidence: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// writeGatewayKey writes the public half of the gateway key in dataDir as
// PEM. It reads the key file, not the server, so it works either way; the
// key is made on the server's first start.
func writeGatewayKey(dataDir, path string) error {
	keyFile := filepath.Join(dataDir, certified.GatewayKeyFile)
	raw, err := os.ReadFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no gateway key in %s yet (it is made when certmail serve first starts)", dataDir)
	}
	if err != nil {
		return fmt.Errorf("reading the gateway key: %w", err)
	}
	priv, err := receipts.ParsePrivateKeyPEM(raw)
	if err != nil {
		return fmt.Errorf("gateway key %s: %w", keyFile, err)
	}
	pem, err := receipts.MarshalPublicKeyPEM(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, pem, 0o644); err != nil {
		return fmt.Errorf("writing the gateway key: %w", err)
	}
	return nil
}

const verifyLong = `Checks an evidence bundle offline ("-" reads it from stdin). --gateway-key
pins the gateway's public key (PEM, from certmail evidence --gateway-key-out
or GET /v1/keys); without it the bundle is refused, since it names the key
that signed it and a forger would name their own, unless
--trust-embedded-key accepts the bundle's own key knowingly. --message
checks a message file against the item's commitment H(L,r,M), with the
salt r the bundle releases with the message, or, for an item not released
(refused, expired), the salt the sender was given at posting (--salt);
items posted before salting have H(L,M).
The bundle's signed head shows its records are all the item's as of the
head's time; a version 1 bundle has none, so a cut-short one would go
unseen: it is refused unless --allow-incomplete is given.
Exit status 0 only if everything verifies.
`

func newVerifyCmd(e *env) *cobra.Command {
	var f verifyFlags
	c := &cobra.Command{
		Use:   "verify BUNDLE (--gateway-key FILE | --trust-embedded-key) [--message M.eml [--salt HEX]] [--json]",
		Short: "check an evidence bundle offline; exit 1 naming a failure",
		Long:  verifyLong,
		Args:  exactArgs("BUNDLE"),
		RunE: func(c *cobra.Command, args []string) error {
			if f.saltHex != "" && f.msgFile == "" {
				return usageError("--salt checks a message: give --message too")
			}
			return status(runVerify(e, args[0], &f))
		},
	}
	fs := c.Flags()
	fs.StringVar(&f.keyFile, "gateway-key", "", "the gateway's public key `file` (PEM): records must be signed with it")
	fs.StringVar(&f.msgFile, "message", "", "a message `file` to check against the item's H(L,r,M)")
	fs.StringVar(&f.saltHex, "salt", "", "the salt r (`hex`) given to the sender at posting, for --message when the bundle releases none")
	fs.BoolVar(&f.asJSON, "json", false, "print the verdict as JSON")
	fs.BoolVar(&f.allowIncomplete, "allow-incomplete", false, "accept a version 1 bundle, whose completeness no signed head shows")
	fs.BoolVar(&f.trustEmbedded, "trust-embedded-key", false, "without --gateway-key, accept the gateway key the bundle carries (anyone can make one)")
	return c
}

type verifyFlags struct {
	keyFile, msgFile, saltHex              string
	asJSON, allowIncomplete, trustEmbedded bool
}

func runVerify(e *env, bundle string, f *verifyFlags) int {
	keyFile, msgFile, saltHex, asJSON, allowIncomplete, trustEmbedded := &f.keyFile, &f.msgFile, &f.saltHex, &f.asJSON, &f.allowIncomplete, &f.trustEmbedded
	var err error
	fail := func(format string, args ...any) int {
		fmt.Fprintf(e.stderr, "certmail verify: FAILED: %s\n", fmt.Sprintf(format, args...))
		return exitFailure
	}
	var data []byte
	if bundle == "-" {
		data, err = io.ReadAll(io.LimitReader(e.stdin, 16<<20))
	} else {
		data, err = os.ReadFile(bundle)
	}
	if err != nil {
		return fail("reading the bundle: %v", err)
	}
	b, err := evidence.ParseBundle(data)
	if err != nil {
		return fail("%v", err)
	}
	opts := evidence.VerifyOptions{RequireComplete: !*allowIncomplete, RequirePinnedKey: !*trustEmbedded}
	if *keyFile != "" {
		pem, err := os.ReadFile(*keyFile)
		if err != nil {
			return fail("reading the gateway key: %v", err)
		}
		if opts.GatewayKey, err = receipts.ParsePublicKeyPEM(pem); err != nil {
			return fail("gateway key %s: %v", *keyFile, err)
		}
	}
	if *saltHex != "" {
		salt, err := receipts.ParseSalt(strings.TrimSpace(*saltHex))
		if err != nil {
			return fail("%v", err)
		}
		opts.Salt = &salt
	}
	if *msgFile != "" {
		f, err := os.Open(*msgFile)
		if err != nil {
			return fail("reading the message: %v", err)
		}
		defer f.Close()
		opts.Message = f
	}
	v, err := evidence.Verify(b, opts)
	if err != nil {
		return fail("%v", err)
	}
	if *asJSON {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fail("%v", err)
		}
		e.stdout.Write(buf.Bytes())
		return exitOK
	}
	fmt.Fprint(e.stdout, v.String())
	fmt.Fprintln(e.stdout, verdictLine(v))
	return exitOK
}

// verdictLine is the one-line summary a person reads first.
func verdictLine(v *evidence.Verdict) string {
	var caveats []string
	if !v.GatewayKeyPinned {
		caveats = append(caveats, "gateway key taken from the bundle, not pinned (use --gateway-key)")
	}
	if !v.MessageChecked {
		caveats = append(caveats, "no message checked (use --message)")
	}
	if !v.Complete {
		// A bundle cut short verifies too; without a head nobody can tell.
		caveats = append(caveats, "completeness not shown (version 1 bundle without a signed head): later records may exist")
	}
	line := fmt.Sprintf("VERIFIED: %d records of item %s, final state %s", len(v.Events), v.Label, v.State)
	if v.Complete {
		line += fmt.Sprintf(", complete as of %s", v.HeadIssuedAt.UTC().Format(time.RFC3339))
	}
	if len(caveats) > 0 {
		line += "; " + strings.Join(caveats, "; ")
	}
	return line
}
