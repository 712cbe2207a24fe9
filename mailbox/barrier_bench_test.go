package mailbox

import (
	"testing"
	"time"
)

// BenchmarkCatchUp is one command's catch-up on a quiet node of two
// sharing a PostgreSQL database: what every state-reporting IMAP command
// pays on PostgreSQL (SELECT, STATUS, NOOP). Run alone:
//
//	go test -run '^$' -bench CatchUp -benchtime 5000x ./mailbox
func BenchmarkCatchUp(b *testing.B) {
	nodes := openNodes(b, 2, Options{})
	a, n := nodes[0], nodes[1]
	newAccount(b, a, "c")
	appendOne(b, a, "c", "INBOX", nil)
	time.Sleep(2 * followWakeLookback)
	if err := n.CatchUp(); err != nil {
		b.Fatal(err)
	}
	defer roundTrips(b, n)()
	for b.Loop() {
		if err := n.CatchUp(); err != nil {
			b.Fatal(err)
		}
	}
}
