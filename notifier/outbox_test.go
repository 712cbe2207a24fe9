package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"certmail/kv"
)

func mailNotice(id string) Notice {
	return Notice{
		ID:      id,
		To:      []string{"Alice <alice@example.org>"},
		From:    "certmail <postmaster@mail.example.org>",
		Subject: "Certificate of posting",
		Text:    "Your item was posted.",
		Attachments: []Attachment{
			{Name: "cop.jws", ContentType: "application/jose", Data: []byte("eyJ.eyJ.sig")},
		},
	}
}

func TestOutboxDeliversMail(t *testing.T) {
	sink := startSMTPSink(t, nil, "", "")
	db := newMemDB()
	o := newTestOutbox(t, db, Config{Relay: &Relay{Addr: sink.Addr, HeloName: "gw.test"}})
	enqueue(t, db, o, mailNotice("cop-1"))
	if n := db.pending(t); n != 1 {
		t.Fatalf("pending = %d", n)
	}
	if sent := deliver(t, o, time.Now()); sent != 1 {
		t.Fatalf("sent = %d", sent)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("sink has %d messages", len(msgs))
	}
	got := msgs[0]
	if got.From != "postmaster@mail.example.org" || len(got.To) != 1 || got.To[0] != "alice@example.org" {
		t.Errorf("envelope = %q -> %q", got.From, got.To)
	}
	msg := parseMessage(t, got.Data)
	if id, _ := msg.Header.MessageID(); id != "cop-1@mail.example.org" {
		t.Errorf("Message-ID = %q", id)
	}
	if string(msg.Attachments["cop.jws"].Data) != "eyJ.eyJ.sig" {
		t.Errorf("attachment = %+v", msg.Attachments)
	}
	if n := db.pending(t); n != 0 {
		t.Errorf("pending after delivery = %d", n)
	}
	if sent := deliver(t, o, time.Now()); sent != 0 {
		t.Errorf("sent again: %d", sent)
	}
	// With the first one gone, the ID may be used again.
	enqueue(t, db, o, mailNotice("cop-1"))
	if n := db.pending(t); n != 1 {
		t.Errorf("pending after re-enqueue = %d", n)
	}
}

func TestEnqueueIsPartOfTheTransaction(t *testing.T) {
	db := newMemDB()
	o := newTestOutbox(t, db, Config{})
	failed := errors.New("event failed")
	err := db.Update(func(kv kv.Records) error {
		if err := o.Enqueue(kv, mailNotice("n1")); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatal(err)
	}
	if n := db.pending(t); n != 0 {
		t.Errorf("a notice of a rolled-back event is queued: pending = %d", n)
	}
}

func TestEnqueueDeduplicatesAndFillsID(t *testing.T) {
	db := newMemDB()
	o := newTestOutbox(t, db, Config{})
	enqueue(t, db, o, mailNotice("same"))
	enqueue(t, db, o, mailNotice("same"))
	n := mailNotice("")
	enqueue(t, db, o, n)
	if got := db.pending(t); got != 2 {
		t.Errorf("pending = %d, want 2", got)
	}
	err := db.Update(func(kv kv.Records) error { return o.Enqueue(kv, Notice{ID: "x"}) })
	if err == nil || !strings.Contains(err.Error(), "no recipients") {
		t.Errorf("invalid notice: %v", err)
	}
	local := mailNotice("local")
	local.To = []string{"alice"}
	err = db.Update(func(kv kv.Records) error { return o.Enqueue(kv, local) })
	if err == nil || !strings.Contains(err.Error(), "need full addresses") {
		t.Errorf("bare account name queued for SMTP: %v", err)
	}
}

func TestOutboxRetriesAfterTemporaryFailure(t *testing.T) {
	sink := startSMTPSink(t, nil, "", "")
	sink.Refuse(errTempFail)
	db := newMemDB()
	o := newTestOutbox(t, db, Config{Relay: &Relay{Addr: sink.Addr}, BackoffBase: time.Minute})
	enqueue(t, db, o, mailNotice("n1"))
	now := time.Now()
	if sent := deliver(t, o, now); sent != 0 {
		t.Fatalf("sent = %d despite 451", sent)
	}
	if n := db.pending(t); n != 1 {
		t.Fatalf("pending = %d after a temporary failure", n)
	}
	e := queuedEntry(t, db, "n1")
	if e.Attempts != 1 || !strings.Contains(e.LastError, "451") {
		t.Errorf("entry after failure: attempts %d, last error %q", e.Attempts, e.LastError)
	}
	// Not due again until the backoff has passed.
	if sent := deliver(t, o, now.Add(59*time.Second)); sent != 0 {
		t.Errorf("retried before the backoff: sent %d", sent)
	}
	if sent := deliver(t, o, now.Add(61*time.Second)); sent != 1 {
		t.Fatalf("retry: sent = %d", sent)
	}
	if len(sink.Messages()) != 1 || db.pending(t) != 0 {
		t.Errorf("after retry: sink %d, pending %d", len(sink.Messages()), db.pending(t))
	}
}

// queuedEntry finds a queued notice's entry through the ID index.
func queuedEntry(t *testing.T, db *memDB, id string) entry {
	t.Helper()
	var e entry
	err := db.View(func(kv kv.Records) error {
		key, found, err := kv.Get(idKey(id))
		if err != nil || !found {
			return errors.Join(err, errors.New("no index entry"))
		}
		data, found, err := kv.Get(key)
		if err != nil || !found {
			return errors.Join(err, errors.New("index points nowhere"))
		}
		return json.Unmarshal(data, &e)
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestOutboxDeadLetterAfterMaxAttempts(t *testing.T) {
	sink := startSMTPSink(t, nil, "", "")
	sink.RefuseAlways(errTempFail)
	db := newMemDB()
	o := newTestOutbox(t, db, Config{Relay: &Relay{Addr: sink.Addr}, MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: 2 * time.Second})
	enqueue(t, db, o, mailNotice("doomed"))
	now := time.Now()
	for i := range 3 {
		if sent := deliver(t, o, now.Add(time.Duration(i)*time.Hour)); sent != 0 {
			t.Fatalf("attempt %d sent", i+1)
		}
	}
	if n := db.pending(t); n != 0 {
		t.Fatalf("pending = %d after giving up", n)
	}
	dead := db.deadLetters(t)
	if len(dead) != 1 || dead[0].Notice.ID != "doomed" || dead[0].Attempts != 3 || !strings.Contains(dead[0].LastError, "451") || dead[0].Died.IsZero() {
		t.Fatalf("dead letters = %+v", dead)
	}
	// A dead ID is not queued again by a repeated Enqueue...
	enqueue(t, db, o, mailNotice("doomed"))
	if n := db.pending(t); n != 0 {
		t.Errorf("dead notice re-queued by Enqueue: pending %d", n)
	}
	// ...but an operator can retry it.
	sink.RefuseAlways(nil)
	later := now.Add(5 * time.Hour)
	if err := db.Update(func(kv kv.Records) error { return Retry(kv, "doomed", later) }); err != nil {
		t.Fatal(err)
	}
	if sent := deliver(t, o, later); sent != 1 {
		t.Fatalf("after Retry: sent %d", sent)
	}
	if len(db.deadLetters(t)) != 0 {
		t.Error("dead letter still listed after a successful retry")
	}
	err := db.Update(func(kv kv.Records) error { return Retry(kv, "doomed", later) })
	if !errors.Is(err, ErrNotDead) {
		t.Errorf("retry of a delivered notice: %v", err)
	}
}

func TestOutboxPermanentFailureIsDeadAtOnce(t *testing.T) {
	sink := startSMTPSink(t, nil, "", "")
	sink.Refuse(errRejected)
	db := newMemDB()
	o := newTestOutbox(t, db, Config{Relay: &Relay{Addr: sink.Addr}})
	enqueue(t, db, o, mailNotice("n1"))
	deliver(t, o, time.Now())
	dead := db.deadLetters(t)
	if len(dead) != 1 || dead[0].Attempts != 1 || !strings.Contains(dead[0].LastError, "550") {
		t.Fatalf("dead letters = %+v", dead)
	}
}

// Without a relay, mail notices wait without spending attempts (they
// used to become dead letters after MaxAttempts, a WARN each time), Run
// says so once, and a process started with a relay sends them at once.
func TestOutboxWithoutRelayWaits(t *testing.T) {
	db := newMemDB()
	var logs syncBuffer
	o := newTestOutbox(t, db, Config{MaxAttempts: 2, BackoffMax: time.Hour, PollInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	enqueue(t, db, o, mailNotice("n1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	// Many rounds of Run, each finding n1 due in a far future after the
	// first; then rounds at times past every retry.
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done
	now := time.Now()
	for i := range 10 {
		deliver(t, o, now.Add(time.Duration(i+1)*2*time.Hour))
	}
	e := queuedEntry(t, db, "n1")
	if e.Attempts != 0 || !e.WaitingForRelay || !strings.Contains(e.LastError, "no SMTP relay") {
		t.Errorf("entry = %+v", e)
	}
	if dead := db.deadLetters(t); len(dead) != 0 {
		t.Errorf("dead letters without a relay: %+v", dead)
	}
	text := logs.String()
	if n := strings.Count(text, "no relay configured"); n != 1 || strings.Contains(text, "level=WARN") ||
		!strings.Contains(text, `level=INFO msg="no relay configured: notices to external addresses wait in the outbox`) {
		t.Errorf("want one INFO line saying no relay is configured and no WARN, got:\n%s", text)
	}
	if strings.Contains(text, "will retry") {
		t.Errorf("retries logged without a relay:\n%s", text)
	}

	// The next start has a relay: n1 goes out at once, not BackoffMax later.
	sink := startSMTPSink(t, nil, "", "")
	o2 := newTestOutbox(t, db, Config{Relay: &Relay{Addr: sink.Addr}, BackoffMax: time.Hour, PollInterval: time.Hour})
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- o2.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.Messages()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(sink.Messages()) != 1 {
		t.Fatal("a notice parked for want of a relay was not sent when a relay was configured")
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBackoff(t *testing.T) {
	o := newTestOutbox(t, newMemDB(), Config{BackoffBase: time.Minute, BackoffMax: 10 * time.Minute})
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	for i, w := range want {
		if got := o.backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := o.backoff(1000); got != 10*time.Minute {
		t.Errorf("backoff(1000) = %v", got)
	}
}

// countingKV counts what Scan hands to its callback.
type countingKV struct {
	kv.Records
	visited *int
}

func (c countingKV) Scan(prefix []byte, fn func(k, v []byte) error) error {
	return c.Records.Scan(prefix, func(k, v []byte) error {
		*c.visited++
		return fn(k, v)
	})
}

type countingDB struct {
	*memDB
	visited int
}

func (d *countingDB) Update(fn func(kv kv.Records) error) error {
	return d.memDB.Update(func(kv kv.Records) error { return fn(countingKV{kv, &d.visited}) })
}

func (d *countingDB) View(fn func(kv kv.Records) error) error {
	return d.memDB.View(func(kv kv.Records) error { return fn(countingKV{kv, &d.visited}) })
}

// TestDeliverDueReadsOnlyWhatIsDue: with many notices queued for later,
// a round reads the due ones and one more, in due order.
func TestDeliverDueReadsOnlyWhatIsDue(t *testing.T) {
	sink := startSMTPSink(t, nil, "", "")
	db := &countingDB{memDB: newMemDB()}
	o := newTestOutbox(t, db, Config{Relay: &Relay{Addr: sink.Addr}})
	now := time.Now()
	err := db.memDB.Update(func(kv kv.Records) error {
		for i := range 200 {
			n := mailNotice("later-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
			if err := o.EnqueueAt(kv, n, now.Add(time.Hour+time.Duration(i)*time.Minute)); err != nil {
				return err
			}
		}
		for i, id := range []string{"due-c", "due-a", "due-b"} {
			n := mailNotice(id)
			n.Subject = id
			if err := o.EnqueueAt(kv, n, now.Add(-time.Duration(3-i)*time.Minute)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.visited = 0
	if sent := deliver(t, o, now); sent != 3 {
		t.Fatalf("sent = %d", sent)
	}
	if db.visited > 4 {
		t.Errorf("a round visited %d entries for 3 due ones", db.visited)
	}
	var order []string
	for _, m := range sink.Messages() {
		h := parseMessage(t, m.Data).Header
		subj, _ := h.Subject()
		order = append(order, subj)
	}
	if strings.Join(order, ",") != "due-c,due-a,due-b" {
		t.Errorf("sent in order %v, want due order", order)
	}
	if next, ok, err := o.NextDue(); err != nil || !ok || !next.Equal(time.Unix(0, now.Add(time.Hour).UnixNano())) {
		t.Errorf("NextDue = %v, %v, %v", next, ok, err)
	}
}

// TestLeaseHidesClaimedNotice: a notice claimed by a sender that then
// dies is sent again once the lease runs out, not before.
func TestLeaseHidesClaimedNotice(t *testing.T) {
	sink := startSMTPSink(t, nil, "", "")
	db := newMemDB()
	o := newTestOutbox(t, db, Config{Relay: &Relay{Addr: sink.Addr}, Lease: 5 * time.Minute})
	enqueue(t, db, o, mailNotice("n1"))
	now := time.Now()
	claims, err := o.claimDue(now) // and then "crash"
	if err != nil || len(claims) != 1 {
		t.Fatalf("claim: %v, %d", err, len(claims))
	}
	if sent := deliver(t, o, now.Add(time.Minute)); sent != 0 {
		t.Errorf("claimed notice sent during its lease")
	}
	if sent := deliver(t, o, now.Add(6*time.Minute)); sent != 1 {
		t.Errorf("notice not sent after its lease ran out")
	}
	// The first claimant's late report changes nothing.
	if err := o.settle(claims[0], nil, now); err != nil {
		t.Fatal(err)
	}
	if db.pending(t) != 0 || len(sink.Messages()) != 1 {
		t.Errorf("pending %d, sent %d", db.pending(t), len(sink.Messages()))
	}
}

func TestRelayStartTLSWithAuth(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	sink := startSMTPSink(t, serverTLS, "gw", "s3cret")
	db := newMemDB()
	relay := &Relay{Addr: sink.Addr, StartTLS: true, TLSConfig: clientTLS, Username: "gw", Password: "s3cret", HeloName: "gw.test"}
	o := newTestOutbox(t, db, Config{Relay: relay})
	enqueue(t, db, o, mailNotice("n1"))
	if sent := deliver(t, o, time.Now()); sent != 1 {
		t.Fatalf("sent = %d; entry %+v", sent, queuedEntry(t, db, "n1"))
	}
	m := sink.Messages()[0]
	if !m.TLS || m.User != "gw" {
		t.Errorf("TLS %v, user %q", m.TLS, m.User)
	}

	// A wrong password is retried (an operator may fix it), not dropped.
	relay2 := *relay
	relay2.Password = "wrong"
	o2 := newTestOutbox(t, db, Config{Relay: &relay2})
	enqueue(t, db, o2, mailNotice("n2"))
	deliver(t, o2, time.Now())
	if e := queuedEntry(t, db, "n2"); e.Attempts != 1 || !strings.Contains(e.LastError, "535") {
		t.Errorf("entry after bad password = %+v", e)
	}
}

func TestRelayImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	sink := startSMTPSinkOn(t, tlsListen(t, serverTLS), nil, "gw", "pw")
	relay := &Relay{Addr: sink.Addr, ImplicitTLS: true, TLSConfig: clientTLS, Username: "gw", Password: "pw"}
	if err := relay.Send(context.Background(), "a@example.org", []string{"b@example.org"}, []byte("Subject: x\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	if m := sink.Messages(); len(m) != 1 || !m[0].TLS || m[0].User != "gw" {
		t.Errorf("messages = %+v", m)
	}
	// Without the test CA the certificate is not trusted.
	relay.TLSConfig = nil
	err := relay.Send(context.Background(), "a@example.org", []string{"b@example.org"}, []byte("Subject: x\r\n\r\nhi\r\n"))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}
}

func TestRelayConfigChecks(t *testing.T) {
	cases := map[string]Relay{
		"no port":                 {Addr: "mail.example.org"},
		"password in the clear":   {Addr: "mail.example.org:25", Username: "u", Password: "p"},
		"both TLS modes":          {Addr: "mail.example.org:25", StartTLS: true, ImplicitTLS: true},
		"password to a public IP": {Addr: "192.0.2.1:25", Username: "u"},
	}
	for name, r := range cases {
		if _, err := NewOutbox(newMemDB(), Config{Relay: &r}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, ok := range []Relay{
		{Addr: "127.0.0.1:25", Username: "u", Password: "p"},
		{Addr: "localhost:25", Username: "u", Password: "p"},
		{Addr: "mail.example.org:587", StartTLS: true, Username: "u", Password: "p"},
	} {
		if _, err := NewOutbox(newMemDB(), Config{Relay: &ok}); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, bad := range []Webhook{{URL: "https://x.test/h"}, {URL: "ftp://x.test", Secret: "s"}, {URL: "/relative", Secret: "s"}} {
		if _, err := NewOutbox(newMemDB(), Config{Webhooks: []Webhook{bad}}); err == nil {
			t.Errorf("webhook %+v accepted", bad)
		}
	}
}

// webhookSink is an httptest server that checks signatures and records
// payloads; statuses queued in fail are answered first.
type webhookSink struct {
	*httptest.Server
	secret string

	mu       sync.Mutex
	fail     []int
	payloads []string
	ids      []string
}

func startWebhookSink(t *testing.T, secret string) *webhookSink {
	s := &webhookSink{secret: secret}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusMethodNotAllowed)
			return
		}
		if !VerifyWebhookSignature(s.secret, body, r.Header.Get(SignatureHeader)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.ids = append(s.ids, r.Header.Get(DeliveryHeader))
		if len(s.fail) > 0 {
			code := s.fail[0]
			s.fail = s.fail[1:]
			http.Error(w, "not now", code)
			return
		}
		s.payloads = append(s.payloads, string(body))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *webhookSink) Payloads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.payloads...)
}

func TestWebhookDeliveryAndRetry(t *testing.T) {
	hook := startWebhookSink(t, "hook-secret")
	hook.fail = []int{http.StatusServiceUnavailable}
	db := newMemDB()
	o := newTestOutbox(t, db, Config{Webhooks: []Webhook{{URL: hook.URL + "/events", Secret: "hook-secret"}}})
	payload := `{"event":"ConsignmentAcceptance","label":"cm-x"}`
	enqueue(t, db, o, Notice{ID: "ev-1", Kind: KindWebhook, URL: hook.URL + "/events", Payload: json.RawMessage(payload)})
	now := time.Now()
	if sent := deliver(t, o, now); sent != 0 {
		t.Fatal("sent despite 503")
	}
	if e := queuedEntry(t, db, "ev-1"); !strings.Contains(e.LastError, "503") {
		t.Errorf("last error = %q", e.LastError)
	}
	if sent := deliver(t, o, now.Add(2*time.Minute)); sent != 1 {
		t.Fatal("not sent on retry")
	}
	if got := hook.Payloads(); len(got) != 1 || got[0] != payload {
		t.Errorf("payloads = %q", got)
	}
	if strings.Join(hook.ids, ",") != "ev-1,ev-1" {
		t.Errorf("delivery IDs = %v", hook.ids)
	}
}

func TestWebhookPermanentFailures(t *testing.T) {
	hook := startWebhookSink(t, "right")
	db := newMemDB()
	// The receiver knows a different secret: 401, which retrying
	// cannot fix.
	o := newTestOutbox(t, db, Config{Webhooks: []Webhook{{URL: hook.URL, Secret: "wrong"}}})
	enqueue(t, db, o, Notice{ID: "ev-1", Kind: KindWebhook, URL: hook.URL, Payload: json.RawMessage(`{}`)})
	deliver(t, o, time.Now())
	dead := db.deadLetters(t)
	if len(dead) != 1 || !strings.Contains(dead[0].LastError, "401") {
		t.Fatalf("dead letters = %+v", dead)
	}
	// A URL nobody configured cannot be queued.
	err := db.Update(func(kv kv.Records) error {
		return o.Enqueue(kv, Notice{ID: "ev-2", Kind: KindWebhook, URL: "http://elsewhere.test/", Payload: json.RawMessage(`{}`)})
	})
	if err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("unconfigured URL: %v", err)
	}
}

func TestWebhookSignature(t *testing.T) {
	// RFC 4231 test case 2.
	got := WebhookSignature("Jefe", []byte("what do ya want for nothing?"))
	if got != "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" {
		t.Errorf("signature = %s", got)
	}
	if !VerifyWebhookSignature("Jefe", []byte("what do ya want for nothing?"), got) || VerifyWebhookSignature("Jefe", []byte("x"), got) {
		t.Error("VerifyWebhookSignature is wrong")
	}
}

func TestRunSendsOnKickAndStops(t *testing.T) {
	sink := startSMTPSink(t, nil, "", "")
	db := newMemDB()
	o := newTestOutbox(t, db, Config{Relay: &Relay{Addr: sink.Addr}, PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()

	enqueue(t, db, o, mailNotice("n1"))
	o.Kick()
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.Messages()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(sink.Messages()) != 1 {
		t.Fatal("Run did not send after Kick")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestDeliverDueStopsOnCancel(t *testing.T) {
	db := newMemDB()
	// A relay that accepts the connection and never answers.
	ln, err := newSilentListener()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	o := newTestOutbox(t, db, Config{Relay: &Relay{Addr: ln.Addr().String()}})
	enqueue(t, db, o, mailNotice("n1"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = o.DeliverDue(ctx, time.Now())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DeliverDue = %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("cancel took %v", time.Since(start))
	}
	// The attempt was cut short, not failed: no attempt recorded.
	if e := queuedEntry(t, db, "n1"); e.Attempts != 0 {
		t.Errorf("attempts = %d", e.Attempts)
	}
}

// TestListStates: List reports each notice in the state it is in,
// queued, waiting for a relay, dead (with its error) and sent (kept as a
// summary once the message is gone), and RetryDead queues the dead again.
func TestListStates(t *testing.T) {
	sink := startSMTPSink(t, nil, "", "")
	db := newMemDB()
	o := newTestOutbox(t, db, Config{Relay: &Relay{Addr: sink.Addr}, MaxAttempts: 1})
	withRef := func(n Notice, ref string) Notice { n.Ref = ref; return n }
	enqueue(t, db, o, withRef(mailNotice("cm-receipt-a"), "item-a"))
	enqueue(t, db, o, withRef(mailNotice("cm-posted-b"), "item-b"))
	now := time.Now()
	if sent := deliver(t, o, now); sent != 2 {
		t.Fatalf("sent %d", sent)
	}
	sink.RefuseAlways(errRejected)
	enqueue(t, db, o, mailNotice("cm-refused-a"))
	now = time.Now()
	deliver(t, o, now)
	enqueue(t, db, o, mailNotice("other"))
	list := func(opts ListOptions) []Status {
		var out []Status
		if err := db.View(func(kv kv.Records) error {
			var err error
			out, err = List(kv, opts)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := list(ListOptions{Sent: true})
	states := map[string]Status{}
	for _, s := range all {
		states[s.ID] = s
	}
	if len(all) != 4 || states["other"].State != StateQueued || states["cm-refused-a"].State != StateDead ||
		states["cm-receipt-a"].State != StateSent || states["cm-receipt-a"].Sent.IsZero() ||
		states["cm-refused-a"].LastError == "" || states["cm-receipt-a"].Subject == "" {
		t.Fatalf("List: %+v", all)
	}
	if got := list(ListOptions{Match: func(id string) bool { return strings.HasSuffix(id, "-a") }}); len(got) != 1 || got[0].ID != "cm-refused-a" {
		t.Errorf("List without sent, matching -a: %+v", got)
	}
	// By Ref, the sent notice through its index; Match adds what has no Ref.
	if got := list(ListOptions{Ref: "item-a", Sent: true}); len(got) != 1 || got[0].ID != "cm-receipt-a" || got[0].State != StateSent {
		t.Errorf("List by ref: %+v", got)
	}
	if got := list(ListOptions{Ref: "item-a", Sent: true, Match: func(id string) bool { return strings.HasSuffix(id, "-a") }}); len(got) != 2 {
		t.Errorf("List by ref and match: %+v", got)
	}
	var ids []string
	if err := db.Update(func(kv kv.Records) error {
		var err error
		ids, err = RetryDead(kv, now)
		return err
	}); err != nil || len(ids) != 1 || ids[0] != "cm-refused-a" {
		t.Fatalf("RetryDead: %v %v", ids, err)
	}
	if s := list(ListOptions{Match: func(id string) bool { return id == "cm-refused-a" }}); len(s) != 1 || s[0].State != StateQueued || s[0].Attempts != 0 {
		t.Errorf("after RetryDead: %+v", s)
	}
}
