package notifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"certmail/receipts"

	"certmail/kv"
)

// memDB is a kv.RecordStore over receipts.MemKV with real rollback: Update works
// on a copy and keeps it only if fn succeeds, like a store transaction.
type memDB struct {
	mu sync.Mutex
	kv *receipts.MemKV
}

func newMemDB() *memDB { return &memDB{kv: receipts.NewMemKV()} }

func (d *memDB) Update(fn func(kv kv.Records) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	tx := receipts.NewMemKV()
	if err := d.kv.Scan(nil, func(k, v []byte) error { return tx.Set(k, v) }); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	d.kv = tx
	return nil
}

func (d *memDB) View(fn func(kv kv.Records) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fn(readOnlyKV{d.kv})
}

type readOnlyKV struct{ kv.Records }

func (readOnlyKV) Set(_, _ []byte) error { return errors.New("read-only transaction") }
func (readOnlyKV) Delete(_ []byte) error { return errors.New("read-only transaction") }

func (d *memDB) pending(t *testing.T) int {
	t.Helper()
	var n int
	if err := d.View(func(kv kv.Records) error {
		var err error
		n, err = Pending(kv)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (d *memDB) deadLetters(t *testing.T) []DeadLetter {
	t.Helper()
	var out []DeadLetter
	if err := d.View(func(kv kv.Records) error {
		var err error
		out, err = DeadLetters(kv)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sunk is one message the SMTP sink accepted.
type sunk struct {
	From string
	To   []string
	Data []byte
	User string // who authenticated, if anyone
	TLS  bool
}

// smtpSink is a real SMTP server on 127.0.0.1 that records what it
// accepts. Errors queued in refuse are returned, one per message, at DATA.
type smtpSink struct {
	Addr string

	mu       sync.Mutex
	messages []sunk
	refuse   []error
	always   error // refuse every message with this, when set
	user     string
	password string
	// mailDelay holds each MAIL FROM this long before answering: a slow
	// relay, slow before it has the message.
	mailDelay time.Duration
}

func (s *smtpSink) SetMailDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mailDelay = d
}

// Count returns how many accepted messages have each Subject.
func (s *smtpSink) Count(t *testing.T) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, m := range s.Messages() {
		h := parseMessage(t, m.Data).Header
		subj, err := h.Subject()
		if err != nil {
			t.Fatal(err)
		}
		counts[subj]++
	}
	return counts
}

func (s *smtpSink) Messages() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.messages...)
}

func (s *smtpSink) Refuse(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = append(s.refuse, errs...)
}

func (s *smtpSink) RefuseAlways(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.always = err
}

// startSMTPSink serves plain SMTP, offering STARTTLS when tlsConfig is
// set, and requiring AUTH PLAIN when user is set.
func startSMTPSink(t *testing.T, tlsConfig *tls.Config, user, password string) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startSMTPSinkOn(t, ln, tlsConfig, user, password)
}

// tlsListen listens for implicit TLS on 127.0.0.1.
func tlsListen(t *testing.T, cfg *tls.Config) net.Listener {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func startSMTPSinkOn(t *testing.T, ln net.Listener, tlsConfig *tls.Config, user, password string) *smtpSink {
	t.Helper()
	sink := &smtpSink{Addr: ln.Addr().String(), user: user, password: password}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: sink, conn: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.TLSConfig = tlsConfig
	srv.AllowInsecureAuth = true // the sink checks TLS itself where it matters
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sink
}

type sinkSession struct {
	sink *smtpSink
	conn *smtp.Conn
	user string
	msg  sunk
}

func (s *sinkSession) AuthMechanisms() []string {
	if s.sink.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != s.sink.user || password != s.sink.password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.user = user
		return nil
	}), nil
}

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.sink.mu.Lock()
	delay := s.sink.mailDelay
	s.sink.mu.Unlock()
	time.Sleep(delay)
	if s.sink.user != "" && s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authenticate first"}
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.msg = sunk{From: from, User: s.user, TLS: isTLS}
	return nil
}

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.sink.mu.Lock()
	defer s.sink.mu.Unlock()
	if s.sink.always != nil {
		return s.sink.always
	}
	if len(s.sink.refuse) > 0 {
		err := s.sink.refuse[0]
		s.sink.refuse = s.sink.refuse[1:]
		return err
	}
	s.msg.Data = data
	s.sink.messages = append(s.sink.messages, s.msg)
	return nil
}

func (s *sinkSession) Reset()        { s.msg = sunk{} }
func (s *sinkSession) Logout() error { return nil }

var (
	errTempFail = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	errRejected = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
)

// selfSignedTLS returns a server config for 127.0.0.1 and a client config
// that trusts it.
func selfSignedTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sink.test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool}
	return server, client
}

// quietLogger keeps test output readable; failures are asserted on.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestOutbox(t *testing.T, db kv.RecordStore, cfg Config) *Outbox {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	o, err := NewOutbox(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func enqueue(t *testing.T, db *memDB, o *Outbox, n Notice) {
	t.Helper()
	if err := db.Update(func(kv kv.Records) error { return o.Enqueue(kv, n) }); err != nil {
		t.Fatal(err)
	}
}

func deliver(t *testing.T, o *Outbox, now time.Time) int {
	t.Helper()
	sent, err := o.DeliverDue(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	return sent
}

// newSilentListener accepts connections and never says a word, like a
// relay that hangs.
func newSilentListener() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln, nil
}
