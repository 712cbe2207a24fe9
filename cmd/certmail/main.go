package main

import (
	"fmt"
	"io"
	"os"
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
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitDataErr  = 65 // EX_DATAERR: the message is refused as it is
	exitNoUser   = 67 // EX_NOUSER
	exitUnavail  = 69 // EX_UNAVAILABLE: domain not served, bad address
	exitTempFail = 75 // EX_TEMPFAIL: try again later
)

const usage = `usage: certmail <command> [arguments]

commands:
  serve [--config FILE] [--data DIR] [--imap ADDR] [--imaps ADDR] [--lmtp ADDR]
        [--http ADDR] [--tls-cert FILE --tls-key FILE] [--log-level LEVEL]
                               run the server (an empty ADDR turns a listener off)
  user add NAME [--password-stdin] [--pubkey FILE]
                               create an account (asks for the password twice)
  user passwd NAME [--password-stdin]
                               change an account's password
  user del NAME                delete an account and all its mail; its pending
                               certified items end as non-delivery (senders
                               are told), its keys and policies go
  user list                    list accounts
  deliver --to USER [--mailbox NAME]
                               store one message read from stdin; exit 0 only
                               once it is durable; 65 refused as it is (bad
                               Certified-Delivery field, too large), 67 no
                               such user, 69 domain not served or bad address
                               (all permanent: bounce), 75 temporary (disk
                               full, store locked or failing: retry)
  config check FILE            validate a configuration file and the files it
                               names (TLS certificate and key, encryption key)

certified mail (the recipient's side):
  keygen [--out FILE]          write a key pair: FILE (private) and FILE.pub
  key register --user NAME --pubkey FILE
                               register a public key for signing CODs
  key list --user NAME         list an account's keys (active and retired)
  check --label L              verify a released item: the message in the
                               mailbox against the H(L,r,M) that was signed
  key show --gateway [--jwk]   print the gateway's public key (PEM or JWK)
  policy set ACCOUNT --forward-unread-after D --to ALT[,ALT...] [--certified-only] [--mailbox M]
  policy show [ACCOUNT] | policy clear ACCOUNT [--mailbox M]
                               auto-forward what stays unread to alternates
  forward ACCOUNT --uid N [--mailbox M] --to ADDR
                               forward a message by hand (recorded)
  show ACCOUNT --uid N [--mailbox M]
                               print a message as an operator (recorded)
  unread [--older-than D] [--json]
                               unread counts and ages per mailbox, certified
                               items by state
  sign --imap HOST:PORT --user NAME [--key FILE] (--label L | --all)
       [--refuse] [--yes] [--password-stdin] [--tls | --starttls]
                               sign certificates of delivery (or refusals)
                               for stubs found over IMAP and hand them in

certified mail (the sender's side, evidence; docs/verify.md):
  token add NAME [--operator] | token list | token del NAME
                               HTTP API tokens (add prints the token once)
  evidence LABEL [-o FILE] [--gateway-key-out FILE]
                               write the item's evidence bundle (JSON)
  verify BUNDLE [--gateway-key FILE] [--message M.eml] [--json]
                               check a bundle offline; exit 1 naming a failure

operations (docs/operations.md):
  tls selfsigned --host NAME[,NAME...] --out DIR [--days N] [--force]
                               write DIR/cert.pem and DIR/key.pem (self-signed,
                               for development)
  backup --out FILE            write a consistent backup, also while serving
  restore FILE --data DIR      restore a backup into a new data directory
                               (--config: its encryption_key_file)
  version                      print the module version, VCS revision and Go
                               version (also the first line serve logs)
  help                         print this help

The user, deliver, token and evidence commands take [--config FILE] [--data DIR]
and work whether or not the server runs (they go through its admin socket if it
does).
The data directory is --data, else $CERTMAIL_DATA, else the config file's
data, else ./certmail-data (relative to the current directory). Only serve
and user add create a store there (and say where); the other commands
refuse a directory without one, naming the path they looked at.
Defaults: IMAP 127.0.0.1:1143, LMTP 127.0.0.1:2424, HTTP 127.0.0.1:8080.
`

func run(args []string, e *env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, e)
	case "user":
		return cmdUser(rest, e)
	case "deliver":
		return cmdDeliver(rest, e)
	case "config":
		return cmdConfig(rest, e)
	// Certified mail, the recipient's side (sign.go).
	case "keygen":
		return cmdKeygen(rest, e)
	case "key":
		return cmdKey(rest, e)
	case "sign":
		return cmdSign(rest, e)
	case "check":
		return cmdCheck(rest, e)
	// Evidence and the sender API (evidence.go).
	case "token":
		return cmdToken(rest, e)
	case "evidence":
		return cmdEvidence(rest, e)
	case "verify":
		return cmdVerify(rest, e)
	// Auto-forward and unread monitoring (forward.go).
	case "policy":
		return cmdPolicy(rest, e)
	case "forward":
		return cmdForward(rest, e)
	case "show":
		return cmdShow(rest, e)
	case "unread":
		return cmdUnread(rest, e)
	// Operations (ops.go).
	case "tls":
		return cmdTLS(rest, e)
	case "backup":
		return cmdBackup(rest, e)
	case "restore":
		return cmdRestore(rest, e)
	case "version", "--version", "-version":
		return cmdVersion(e)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "certmail: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}
