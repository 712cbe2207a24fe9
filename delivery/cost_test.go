package delivery

import (
	"context"
	"os"
	"testing"

	"certmail/kv/pgkv"
	"certmail/kv/pgkv/pgtest"
	"certmail/mailbox"
)

// pg is the test binary's PostgreSQL cluster, started by the first test
// that asks for it.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// TestLMTPDeliveryCost: what one LMTP delivery (MAIL, RCPT, DATA, one
// recipient) costs a node on PostgreSQL, in transactions and round trips
// (the engine's exact counters), logged. It was three transactions and
// seven round trips: RCPT's existence check, DATA's again, and a delivery
// that read the mailbox twice and the usage and MODSEQ state one after
// the other. Now RCPT's check (one round trip, its COMMIT sent with the
// next statement) and the delivery: the mailbox, then usage and MODSEQ
// state together, then the writes with COMMIT.
func TestLMTPDeliveryCost(t *testing.T) {
	e, err := pgkv.Open(context.Background(), pg.DB(t), pgkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailbox.Open(mailbox.Options{Engine: e, GCInterval: -1, FollowInterval: -1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateAccount("alice", "pw", mailbox.DefaultMailboxes()); err != nil {
		t.Fatal(err)
	}
	addr, _ := startLMTP(t, st, Options{}, LMTPOptions{})
	c := dialLMTP(t, addr)
	deliver := func() {
		t.Helper()
		if err := c.Mail("bob@example.net", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("alice@example.org", nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(tricky); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deliver() // the first takes the blob lease and warms the caches
	const n = 50
	before := e.Stats()
	for range n {
		deliver()
	}
	after := e.Stats()
	xacts := float64(after.Transactions-before.Transactions) / n
	trips := float64(after.RoundTrips-before.RoundTrips) / n
	t.Logf("an LMTP delivery on PostgreSQL: %.2f transactions, %.2f round trips", xacts, trips)
	if xacts > 2 || trips > 4 {
		t.Errorf("an LMTP delivery took %.2f transactions and %.2f round trips; want 2 and 4", xacts, trips)
	}
	if got := len(inboxRaw(t, st, "alice")); got != n+1 {
		t.Fatalf("INBOX has %d messages, want %d", got, n+1)
	}
}
