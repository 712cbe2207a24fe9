package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"certmail/config"
	"certmail/node"
)

// serveFlags are serve's flags; each overrides the config file when given.
type serveFlags struct {
	dirFlags
	imap, imaps, lmtp, http string
	metrics                 string
	tlsCert, tlsKey         string
	logLevel                string
	hostname, relay         string
	node                    string
}

func newServeCmd(e *env) *cobra.Command {
	var sf serveFlags
	c := &cobra.Command{
		Use:   "serve [--config FILE] [--data DIR] [--store URL --node NAME] [--imap ADDR] [--imaps ADDR] [--lmtp ADDR] [--http ADDR] [--tls-cert FILE --tls-key FILE] [--log-level LEVEL]",
		Short: "run the server (an empty ADDR turns a listener off); creates the store if there is none",
		Long: `Runs the store, IMAP, LMTP, HTTP (the sender API, autoconfig, /healthz)
and the admin socket in one process on one data directory, until SIGINT or
SIGTERM. With --store (or [store] url) the store is a PostgreSQL database
that several nodes serve at once (docs/scale-out.md); the data directory
then holds only the gateway key, and there is no admin socket. Each flag
given overrides the config file; an empty ADDR turns that listener off.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			return status(runServe(e, c.Flags(), &sf))
		},
	}
	fs := c.Flags()
	sf.register(fs)
	fs.StringVar(&sf.imap, "imap", config.DefaultIMAP, "IMAP (STARTTLS) listen `address`; empty: off")
	fs.StringVar(&sf.imaps, "imaps", "", "IMAP implicit-TLS listen `address`; empty: off")
	fs.StringVar(&sf.lmtp, "lmtp", config.DefaultLMTP, "LMTP listen `address`; empty: off")
	fs.StringVar(&sf.http, "http", config.DefaultHTTP, "HTTP listen `address`; empty: off")
	fs.StringVar(&sf.metrics, "metrics", "", "Prometheus /metrics listen `address` (e.g. 127.0.0.1:9180); empty: off")
	fs.StringVar(&sf.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM)")
	fs.StringVar(&sf.tlsKey, "tls-key", "", "TLS private key `file` (PEM)")
	fs.StringVar(&sf.logLevel, "log-level", "", "log `level`: debug, info, warn, error")
	fs.StringVar(&sf.hostname, "hostname", "", "the gateway's `name` P in evidence (default: the host name)")
	fs.StringVar(&sf.node, "node", "", "this node's `name` among several on one PostgreSQL store (logs, application_name; default: the host name)")
	fs.StringVar(&sf.relay, "relay", "", "SMTP relay `host:port` for notices to senders (plain on loopback, else STARTTLS)")
	return c
}

func runServe(e *env, fs *pflag.FlagSet, sf *serveFlags) int {
	hostname, relay := &sf.hostname, &sf.relay
	cfg, err := sf.load()
	if err != nil {
		fmt.Fprintf(e.stderr, "certmail serve: %v\n", err)
		return exitFailure
	}
	// Flags given on the command line win over the file.
	fs.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "imap":
			cfg.Listen.IMAP = sf.imap
		case "imaps":
			cfg.Listen.IMAPS = sf.imaps
		case "lmtp":
			cfg.Listen.LMTP = sf.lmtp
		case "http":
			cfg.Listen.HTTP = sf.http
		case "metrics":
			cfg.Listen.Metrics = sf.metrics
		case "tls-cert":
			cfg.TLS.Cert = sf.tlsCert
		case "tls-key":
			cfg.TLS.Key = sf.tlsKey
		case "log-level":
			cfg.LogLevel = sf.logLevel
		case "node":
			cfg.Node = sf.node
		case "hostname":
			cfg.Hostname = *hostname
		case "relay":
			cfg.Relay.Addr = *relay
			if host, _, err := net.SplitHostPort(*relay); err == nil {
				if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
					cfg.Relay.TLS = "none"
				}
			}
		}
	})
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(e.stderr, "certmail serve: %v\n", err)
		return exitFailure
	}
	// What `config check` checks too, before anything is opened.
	if err := cfg.CheckFiles(); err != nil {
		fmt.Fprintf(e.stderr, "certmail serve: %v\n", err)
		return exitFailure
	}
	level, _ := config.ParseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewTextHandler(e.stderr, logOptions(level))) // ops.go: journald

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := node.Run(ctx, cfg, logger); err != nil {
		logger.Error("serve", "err", err)
		return exitFailure
	}
	return exitOK
}
