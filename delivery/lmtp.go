package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"certmail/mailbox"
	"certmail/metrics"
	"certmail/netguard"
)

// LMTPOptions configure the LMTP server.
type LMTPOptions struct {
	// Hostname is announced in the greeting.
	Hostname string
	// MaxRecipients bounds the recipients of one transaction (zero: no
	// limit); more get 452 4.5.3 and the MTA sends them again later.
	MaxRecipients int
	// MaxSessions bounds the connections open at once (zero: no limit);
	// one more is answered 421 4.3.2 instead of the greeting and closed,
	// and the MTA tries again later (RFC 5321 section 3.8).
	MaxSessions int
	// Timeout bounds how long a client may stay silent (zero: 5 minutes,
	// the RFC 5321 data timeout order of magnitude).
	Timeout time.Duration
	Logger  *slog.Logger
	// Debug, if set, receives the raw protocol traffic.
	Debug io.Writer
	// TrustedClients are the LMTP clients whose envelope senders are
	// authenticated: an MTA that hands over only mail its users submitted
	// after logging in, under their own address. Their senders get
	// certified notices by mail; other clients' senders (mail from the
	// Internet, where MAIL FROM is whatever the author wrote) do not.
	TrustedClients []netip.Prefix
	// Metrics, if set, counts each recipient's outcome.
	Metrics *metrics.Metrics
}

// LMTPServer accepts mail from an MTA over LMTP on TCP.
type LMTPServer struct {
	srv     *smtp.Server
	d       *Deliverer
	log     *slog.Logger
	trusted []netip.Prefix
	opts    LMTPOptions

	// mu guards draining and active: the number of sessions inside a
	// transaction (MAIL seen, not yet finished or reset). Shutdown waits
	// for those, not for idle connections an MTA keeps cached.
	mu       sync.Mutex
	draining bool
	active   int
}

// NewLMTPServer returns an LMTP server delivering through d.
func NewLMTPServer(d *Deliverer, opts LMTPOptions) *LMTPServer {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &LMTPServer{d: d, log: logger, trusted: opts.TrustedClients, opts: opts}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, remote: c.Conn().RemoteAddr().String()}, nil
	}))
	srv.LMTP = true
	srv.Network = "tcp"
	srv.Domain = opts.Hostname
	srv.MaxRecipients = opts.MaxRecipients
	if max := d.MaxMessageBytes(); max > 0 {
		// go-smtp's reader fails once it has handed out MaxMessageBytes
		// bytes, before it sees the end of data, so a message of exactly
		// the limit would be refused; one more byte makes the limit
		// inclusive, as in Deliver (the extra byte is refused there).
		srv.MaxMessageBytes = max + 1
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	srv.ReadTimeout = timeout
	srv.WriteTimeout = timeout
	// LMTP carries whatever the MTA accepted; 8BITMIME and SMTPUTF8 cost
	// nothing here since messages are stored byte for byte.
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = slogPrinter{logger}
	srv.Debug = opts.Debug
	s.srv = srv
	return s
}

// Serve accepts connections on ln until Close or Shutdown. Accept errors
// (out of descriptors) pause the listener instead of ending it, and
// connections beyond MaxSessions are turned away (netguard).
func (s *LMTPServer) Serve(ln net.Listener) error {
	g := netguard.Guard(ln, netguard.Options{
		Name:     "lmtp",
		Logger:   s.log,
		MaxConns: s.opts.MaxSessions,
		Refusal: func(_ bool, limit int) []byte {
			// 421 in place of the greeting: the service is not available
			// now, the client is to try again (RFC 5321 sections 3.8,
			// 4.2.3); 4.3.2 "system not accepting network messages"
			// (RFC 3463).
			return fmt.Appendf(nil, "421 4.3.2 %s Too many LMTP sessions (limit %d), try again later\r\n", s.opts.Hostname, limit)
		},
	})
	if err := s.srv.Serve(g); err != nil {
		return fmt.Errorf("lmtp: %w", err)
	}
	return nil
}

// Shutdown refuses new transactions (421, so the MTA retries later), lets
// the running ones finish until ctx ends, then closes the listener and
// every connection. A delivery cut off by the deadline still completes in
// the Deliverer (whose Close waits for it); its sender retries, which may
// duplicate but never loses a message.
func (s *LMTPServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var werr error
	for {
		s.mu.Lock()
		n := s.active
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			werr = fmt.Errorf("lmtp: %d transactions still running: %w", n, ctx.Err())
		case <-t.C:
			continue
		}
		break
	}
	if err := s.srv.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return errors.Join(werr, err)
	}
	return werr
}

// Close stops the server and closes every connection at once.
func (s *LMTPServer) Close() error { return s.srv.Close() }

// session is one LMTP connection's transaction state.
type session struct {
	s      *LMTPServer
	remote string
	from   string
	// rcpts are the accepted RCPT TO addresses in order, as go-smtp holds
	// them: LMTP answers one status per accepted RCPT, in this order.
	rcpts []string
	// active: counted in LMTPServer.active (guarded by its mu).
	active bool
}

// begin marks a transaction as running, unless the server is draining.
func (ss *session) begin() error {
	s := ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down, try again later"}
	}
	if !ss.active {
		ss.active = true
		s.active++
	}
	return nil
}

func (ss *session) end() {
	s := ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.active {
		ss.active = false
		s.active--
	}
}

var _ smtp.LMTPSession = (*session)(nil)

// Reset is called after every DATA and on RSET.
func (ss *session) Reset() {
	ss.from = ""
	ss.rcpts = nil
	ss.end()
}

func (ss *session) Logout() error {
	ss.end()
	return nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.Reset()
	if opts != nil && opts.Size > 0 {
		if max := ss.s.d.MaxMessageBytes(); max > 0 && opts.Size > max {
			return smtpErr(fmt.Errorf("%w: declared %d bytes", ErrTooLarge, opts.Size))
		}
	}
	// A full disk is known before the data is sent (RFC 5321 4.3.2
	// allows 452 for MAIL); DATA checks again with the real size.
	var declared int64
	if opts != nil {
		declared = opts.Size
	}
	if err := ss.s.d.CheckSpace(declared); err != nil {
		ss.s.log.Warn("lmtp: transaction refused: disk full", "remote", ss.remote, "from", from, "err", err)
		return smtpErr(err)
	}
	if err := ss.begin(); err != nil {
		return err
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if _, err := ss.s.d.Resolve(to); err != nil {
		ss.s.log.Info("lmtp: recipient refused", "remote", ss.remote, "from", ss.from, "rcpt", to, "err", err)
		rerr := smtpErr(err)
		ss.s.count(rerr)
		return rerr
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

// Data is the plain SMTP path; go-smtp uses LMTPData in LMTP mode.
func (ss *session) Data(r io.Reader) error {
	return ss.LMTPData(r, nil)
}

func (ss *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	var buf bytes.Buffer
	// Room for most mail up front, then grown (by doubling) only as bytes
	// arrive: never sized from MAIL FROM's SIZE=, which is only a claim.
	// Twenty sessions that declared 50 MB and stalled after DATA used to
	// hold 50 MB each.
	buf.Grow(initialDataBuffer)
	if _, err := buf.ReadFrom(r); err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			ss.s.log.Info("lmtp: message too large", "remote", ss.remote, "from", ss.from, "limit", ss.s.d.MaxMessageBytes())
			for range ss.rcpts {
				ss.s.opts.Metrics.LMTPDelivery(metrics.Rejected)
			}
			return smtpErr(fmt.Errorf("%w: limit %d bytes", ErrTooLarge, ss.s.d.MaxMessageBytes()))
		}
		return fmt.Errorf("reading message: %w", err)
	}
	// The delivery outlives a dropped connection: once the bytes are
	// here, storing them is cheaper than having the MTA resend.
	env := Envelope{Sender: ss.from, SenderAuth: ss.s.senderAuth(ss.remote, ss.from), Trace: true, Remote: ss.remote}
	errs := ss.s.d.DeliverEnvelope(context.Background(), env, ss.rcpts, "INBOX", buf.Bytes())
	for _, err := range errs {
		ss.s.count(smtpErr(err))
	}
	if status == nil {
		for _, err := range errs {
			if err != nil {
				return smtpErr(err)
			}
		}
		return nil
	}
	for i, rcpt := range ss.rcpts {
		status.SetStatus(rcpt, smtpErr(errs[i]))
	}
	return nil
}

// count records one recipient's reply in the metrics.
func (s *LMTPServer) count(reply error) {
	result := metrics.Delivered
	var se *smtp.SMTPError
	switch {
	case reply == nil:
	case errors.As(reply, &se) && se.Code >= 500:
		result = metrics.Rejected
	default:
		result = metrics.Deferred
	}
	s.opts.Metrics.LMTPDelivery(result)
}

// senderAuth says how the envelope sender from remote is authenticated:
// "lmtp-client:IP" when the client is one of TrustedClients, "" otherwise
// (and for the null sender, which names nobody).
func (s *LMTPServer) senderAuth(remote, from string) string {
	if from == "" || len(s.trusted) == 0 {
		return ""
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return ""
	}
	ip := ap.Addr().Unmap()
	for _, p := range s.trusted {
		if p.Contains(ip) {
			return "lmtp-client:" + ip.String()
		}
	}
	return ""
}

// initialDataBuffer is what LMTPData allocates before any data arrives.
const initialDataBuffer = 64 << 10

// smtpErr maps a delivery error to the reply an MTA acts on.
func smtpErr(err error) error {
	if err == nil {
		return nil
	}
	e := func(code int, ec smtp.EnhancedCode, msg string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
	}
	switch {
	case errors.Is(err, ErrNoUser):
		return e(550, smtp.EnhancedCode{5, 1, 1}, "No such user here")
	case errors.Is(err, ErrDomain):
		return e(550, smtp.EnhancedCode{5, 1, 2}, "Domain not served here")
	case errors.Is(err, ErrBadAddress):
		return e(550, smtp.EnhancedCode{5, 1, 3}, "Bad recipient address syntax")
	case errors.Is(err, ErrTooLarge):
		return e(552, smtp.EnhancedCode{5, 3, 4}, "Message too large")
	case errors.Is(err, mailbox.ErrOverQuota):
		// RFC 3463 X.2.2 "mailbox full", permanent as Dovecot answers it
		// by default: the recipient's limit is for the recipient to
		// change, and a sender retrying for days only delays the bounce.
		return e(552, smtp.EnhancedCode{5, 2, 2}, "Mailbox full: the recipient's quota is used up")
	case errors.Is(err, mailbox.ErrDiskFull):
		// RFC 3463 4.3.1 "mail system full"; the MTA keeps the message
		// and retries, and reads go on meanwhile.
		return e(452, smtp.EnhancedCode{4, 3, 1}, "Insufficient system storage: the mail store's disk is full, try again later")
	case errors.Is(err, ErrMalformed):
		// Say exactly what is wrong: the sender has to fix the message.
		msg := err.Error()
		if i := strings.Index(msg, ErrMalformed.Error()+": "); i >= 0 {
			msg = msg[i+len(ErrMalformed.Error())+2:]
		}
		return e(550, smtp.EnhancedCode{5, 6, 0}, oneLine(msg))
	}
	// Anything else is the store's fault, never the sender's: retry.
	return e(451, smtp.EnhancedCode{4, 3, 0}, "Temporary failure storing the message, try again later")
}

// slogPrinter adapts go-smtp's Printf logger to slog (the logger given in
// LMTPOptions carries the component attribute).
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.l.Warn(fmt.Sprintf(format, v...))
}

func (p slogPrinter) Println(v ...any) {
	p.l.Warn(fmt.Sprint(v...))
}

// oneLine keeps a reply text on one line.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}
