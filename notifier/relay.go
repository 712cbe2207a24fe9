package notifier

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Relay is the SMTP server mail notices are handed to.
type Relay struct {
	Addr        string // host:port
	HeloName    string // name given in EHLO; default "localhost"
	StartTLS    bool   // upgrade with STARTTLS (port 587 or 25)
	ImplicitTLS bool   // TLS from the start (port 465)
	TLSConfig   *tls.Config
	// Username and Password, if set, authenticate with AUTH PLAIN, only
	// over TLS unless the relay is on a loopback address.
	Username, Password string
	Timeout            time.Duration // per connection step; default 1 min
}

func (r *Relay) check() error {
	host, _, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return fmt.Errorf("relay address %q: %w", r.Addr, err)
	}
	if r.StartTLS && r.ImplicitTLS {
		return fmt.Errorf("relay %s: choose STARTTLS or implicit TLS, not both", r.Addr)
	}
	if r.Username != "" && !r.StartTLS && !r.ImplicitTLS && !isLoopback(host) {
		return fmt.Errorf("relay %s: refusing to send a password without TLS", r.Addr)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (r *Relay) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if r.TLSConfig != nil {
		cfg = r.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(r.Addr)
	}
	return cfg
}

// Send delivers msg to the relay for the envelope sender from and the
// recipients to. The relay's 5xx answers are permanent errors; anything
// else is worth retrying.
func (r *Relay) Send(ctx context.Context, from string, to []string, msg []byte) error {
	if err := r.check(); err != nil {
		return permanent(err)
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	dialer := net.Dialer{Timeout: timeout}
	conn, err := dialer.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return fmt.Errorf("relay %s: %w", r.Addr, err)
	}
	// go-smtp sets and clears deadlines itself, so cancellation is by
	// closing the connection under it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if r.ImplicitTLS {
		conn = tls.Client(conn, r.tlsConfig())
	}
	var c *smtp.Client
	if r.StartTLS {
		// go-smtp says EHLO as "localhost" before STARTTLS; HeloName
		// is used after it, which is when the relay can trust it.
		c, err = smtp.NewClientStartTLS(conn, r.tlsConfig())
		if err != nil {
			conn.Close()
			return r.wrap(ctx, "STARTTLS", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	c.CommandTimeout = timeout
	c.SubmissionTimeout = 2 * timeout
	helo := r.HeloName
	if helo == "" {
		helo = "localhost"
	}
	if err := c.Hello(helo); err != nil {
		return r.wrap(ctx, "EHLO", err)
	}
	if r.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", r.Username, r.Password)); err != nil {
			// A refused password will not improve with retries, but
			// an operator may fix it, so it is not made permanent.
			return r.wrap(ctx, "AUTH", transient(err))
		}
	}
	if err := c.SendMail(from, to, bytes.NewReader(msg)); err != nil {
		return r.wrap(ctx, "sending", err)
	}
	// The message was accepted at the final dot; a failed QUIT does not
	// undo that.
	_ = c.Quit()
	return nil
}

// wrap adds context to an SMTP failure and marks 5xx answers permanent.
func (r *Relay) wrap(ctx context.Context, step string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("relay %s: %s: %w", r.Addr, step, ctxErr)
	}
	err = fmt.Errorf("relay %s: %s: %w", r.Addr, step, err)
	var smtpErr *smtp.SMTPError
	var keep transientError
	if errors.As(err, &smtpErr) && smtpErr.Code >= 500 && smtpErr.Code < 600 && !errors.As(err, &keep) {
		return permanent(err)
	}
	return err
}

// transientError keeps wrap from making an error permanent.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

func transient(err error) error { return transientError{err} }
