package certified_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"certmail/certified"
	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

// TestNodesExpireOnce (issue 13): three nodes on one PostgreSQL database,
// each with the certified service and running the store's timers, and
// items whose deadlines all pass at once: each item is settled once, by
// one node (non-delivery, or deemed delivery putting M in the INBOX
// once), each item's bundle verifies, and the nodes' logs say "expired"
// once per item (a transaction run again after a conflict said it again
// when it logged before its commit).
func TestNodesExpireOnce(t *testing.T) {
	dsn := engines.PostgresDSN(t)
	const nodes, items = 3, 30
	gw, err := receipts.LoadOrCreateGatewayKey(filepath.Join(t.TempDir(), "gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logMu, &logs}, nil))
	var stores []*mailbox.Store
	var svcs []*certified.Service
	for range nodes {
		st, err := mailbox.Open(mailbox.Options{Engine: engines.Reopen(t, dsn), GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		signer, err := evidence.NewSigner("mail.example.org", gw)
		if err != nil {
			t.Fatal(err)
		}
		lg, err := evidence.NewLog(signer, "mail.example.org/certmail")
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
		svcs = append(svcs, certified.New(st, lg, certified.Options{Gateway: "mail.example.org", Logger: logger}))
	}
	if err := stores[0].CreateAccount("alice", "alice-pw", append(mailbox.DefaultMailboxes(), certified.Mailboxes()...)); err != nil {
		t.Fatal(err)
	}
	if err := stores[0].Update(func(tx *mailbox.Tx) error { return certified.ProvisionCustody(tx, "alice", "alice-pw") }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	var labels []string
	deemed := 0
	for i := range items {
		spec := certified.Spec{Deadline: deadline, OnExpiry: certified.OnExpiryNonDelivery}
		if i%2 == 0 {
			spec.OnExpiry = certified.OnExpiryDeemedDelivery
			deemed++
		}
		if err := stores[i%nodes].Update(func(tx *mailbox.Tx) error {
			it, err := svcs[i%nodes].Post(tx, certified.PostRequest{Raw: heldMessage, Sender: "clerk@court.example", Recipient: "alice", Spec: spec})
			if err == nil {
				labels = append(labels[:i], it.Label)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if time.Now().After(deadline) {
		t.Fatalf("posting took past the deadline %s", deadline)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.RunTimers(ctx, 10*time.Millisecond, svcs[i].Handlers())
		}()
	}
	settled := func() int {
		n := 0
		for _, l := range labels {
			it, err := svcs[1].Item(l)
			if err != nil {
				t.Fatal(err)
			}
			if !it.Pending() {
				n++
			}
		}
		return n
	}
	wait := time.Now().Add(60 * time.Second)
	for settled() < items && time.Now().Before(wait) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a second firing would show now
	cancel()
	wg.Wait()
	if n := settled(); n != items {
		t.Fatalf("%d of %d items settled", n, items)
	}
	for _, st := range stores {
		if due, err := st.DueTimers(time.Now().Add(1000*time.Hour), 10); err != nil || len(due) != 0 {
			t.Fatalf("timers left: %v %v", due, err)
		}
	}
	// Every node's view: the deemed-delivered messages in the INBOX,
	// each once, and nothing else (the stubs withdrawn).
	for n, st := range stores {
		_, status, err := st.Status("alice", "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if status.Messages != uint32(deemed) || status.Size != int64(deemed*len(heldMessage)) {
			t.Errorf("node %d: INBOX holds %d messages of %d bytes, want the %d released, %d bytes",
				n, status.Messages, status.Size, deemed, deemed*len(heldMessage))
		}
	}
	logMu.Lock()
	said := map[string]int{}
	dec := json.NewDecoder(bytes.NewReader(logs.Bytes()))
	for dec.More() {
		var line struct{ Msg, Label string }
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		if line.Msg == "certified item expired" {
			said[line.Label]++
		}
	}
	logMu.Unlock()
	for _, l := range labels {
		if said[l] != 1 {
			t.Errorf("%s: the nodes logged its expiry %d times, want once", l, said[l])
		}
	}
	for i, l := range labels {
		b, err := svcs[i%nodes].Bundle(l)
		if err != nil {
			t.Fatal(err)
		}
		v, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: gw.Public().(ed25519.PublicKey), RequireComplete: true, RequirePinnedKey: true})
		if err != nil {
			t.Fatalf("bundle of %s: %v", l, err)
		}
		// Deemed delivery and non-delivery both settle with one expiry
		// record; the chain allows nothing after it, so a second firing
		// would have failed rather than written twice.
		if v.State != evidence.StateExpired {
			t.Errorf("%s: bundle shows %s, want %s", l, v.State, evidence.StateExpired)
		}
	}
}

// lockedWriter serialises the nodes' log lines into one buffer.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
