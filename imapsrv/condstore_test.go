package imapsrv_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// CONDSTORE and QRESYNC (RFC 7162) are advertised after login (issue 12:
// only once every part worked); ENABLE turns them on.
func TestCondStoreAdvertised(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	caps := capsOf(t, rc.ok(`CAPABILITY`))
	if !caps["CONDSTORE"] || !caps["QRESYNC"] {
		t.Fatalf("CAPABILITY without CONDSTORE and QRESYNC: %v", caps)
	}
	if got := rc.ok(`ENABLE CONDSTORE QRESYNC`); len(got) != 1 || got[0] != "* ENABLED CONDSTORE QRESYNC" {
		t.Fatalf("ENABLE: %q", got)
	}
}

// RFC 7162 3.1.8, example 1 (CONDSTORE parameter to SELECT), and 3.1.2.1:
// once CONDSTORE is enabled, every SELECT and EXAMINE reports
// HIGHESTMODSEQ; before, none does.
func TestCondStoreSelect(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("one", "first"))
	rc := ts.rawLogin("alice")
	mustNotContain(t, rc.ok(`SELECT INBOX`), "MODSEQ")

	sel := rc.ok(`SELECT INBOX (CONDSTORE)`)
	mustContain(t, sel, "[CLOSED]")
	first := codeNumber(t, sel, "HIGHESTMODSEQ")
	if first < 2 {
		t.Fatalf("HIGHESTMODSEQ %d after a delivery", first)
	}
	// A change made by another session moves it on; EXAMINE without the
	// parameter reports it, CONDSTORE being enabled for the connection.
	other := ts.client("alice")
	other.selectBox("INBOX")
	if err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if got := codeNumber(t, rc.ok(`EXAMINE INBOX`), "HIGHESTMODSEQ"); got != first+1 {
		t.Fatalf("HIGHESTMODSEQ after a STORE %d, want %d", got, first+1)
	}
	rc.fail("BAD", `SELECT INBOX (NOSUCHPARAM)`)
	rc.fail("BAD", `SELECT INBOX (CONDSTORE`)
}

// ENABLE CONDSTORE (RFC 7162 3.1, RFC 5161) answers ENABLED CONDSTORE and
// turns on HIGHESTMODSEQ in SELECT.
func TestCondStoreEnable(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	mustContain(t, rc.ok(`ENABLE CONDSTORE`), "* ENABLED CONDSTORE")
	if n := codeNumber(t, rc.ok(`SELECT Drafts`), "HIGHESTMODSEQ"); n < 1 {
		t.Fatalf("empty mailbox HIGHESTMODSEQ %d", n)
	}
}

// STATUS (HIGHESTMODSEQ) with go-imap's client: it moves on with each
// delivery, flag change and expunge, and survives a restart.
func TestStatusHighestModSeq(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	tc := ts.client("alice")
	status := func(tc *testClient) uint64 {
		t.Helper()
		d, err := tc.Status("INBOX", &imap.StatusOptions{HighestModSeq: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		return d.HighestModSeq
	}
	start := status(tc)
	if start < 1 {
		t.Fatalf("HIGHESTMODSEQ %d", start)
	}
	ts.deliver("alice", "INBOX", simpleMessage("one", "first"))
	ts.deliver("alice", "INBOX", simpleMessage("two", "second"))
	if got := status(tc); got != start+2 {
		t.Fatalf("after two deliveries %d, want %d", got, start+2)
	}
	d, err := tc.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil || d.HighestModSeq != start+2 {
		t.Fatalf("SELECT (CONDSTORE): %+v %v", d, err)
	}
	if err := tc.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := tc.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if got := status(tc); got != start+4 {
		t.Fatalf("after STORE and EXPUNGE %d, want %d", got, start+4)
	}
	tc.Logout()
	ts.restart()
	if got := status(ts.client("alice")); got != start+4 {
		t.Fatalf("after a restart %d, want %d", got, start+4)
	}
}

// RFC 7162 3.2: once CONDSTORE is enabled, the FETCH a session gets for
// another session's flag change carries its MODSEQ; a session that did
// not enable it gets none.
func TestCondStoreUnsolicitedFetch(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("one", "body"))
	on := ts.rawLogin("alice")
	hm := codeNumber(t, on.ok(`SELECT INBOX (CONDSTORE)`), "HIGHESTMODSEQ")
	off := ts.rawLogin("alice")
	off.ok(`SELECT INBOX`)
	other := ts.client("alice")
	other.selectBox("INBOX")
	if err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	mustContain(t, on.ok(`NOOP`), fmt.Sprintf(`* 1 FETCH (UID 1 FLAGS (\Flagged) MODSEQ (%d))`, hm+1))
	l := mustContain(t, off.ok(`NOOP`), `* 1 FETCH (UID 1 FLAGS (\Flagged)`)
	if strings.Contains(l, "MODSEQ") {
		t.Fatalf("MODSEQ without CONDSTORE: %q", l)
	}
}

// RFC 7162 3.1: the first CONDSTORE-enabling command in the selected
// state (here FETCH MODSEQ, as imaptest's esearch-condstore sends it, and
// STORE UNCHANGEDSINCE) is answered with OK [HIGHESTMODSEQ n] before its
// own responses, once. n is never newer than the client's view: with
// another session's change still queued for it, n is the value its view
// holds.
func TestCondStoreFirstEnablingCommand(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)
	_, status, err := ts.store.Status("alice", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	hm := status.HighestModSeq

	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	got := rc.ok(`FETCH 1 (MODSEQ)`)
	if len(got) != 2 || got[0] != fmt.Sprintf("* OK [HIGHESTMODSEQ %d] Highest", hm) || !strings.HasPrefix(got[1], "* 1 FETCH (UID 1 MODSEQ (") {
		t.Fatalf("first FETCH MODSEQ: %q", got)
	}
	mustNotContain(t, rc.ok(`FETCH 1 (MODSEQ)`), "HIGHESTMODSEQ")

	// A change queued for the session: the view is still at hm.
	rc2 := ts.rawLogin("alice")
	rc2.ok(`SELECT INBOX`)
	other := ts.rawLogin("alice")
	other.ok(`SELECT INBOX`)
	other.ok(`STORE 2 +FLAGS.SILENT (\Flagged)`)
	got = rc2.ok(fmt.Sprintf(`STORE 1 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\Seen)`, hm))
	if got[0] != fmt.Sprintf("* OK [HIGHESTMODSEQ %d] Highest", hm) {
		t.Fatalf("first STORE UNCHANGEDSINCE: %q", got)
	}
	// With nothing queued, the mailbox's.
	rc3 := ts.rawLogin("alice")
	rc3.ok(`SELECT INBOX`)
	got = rc3.ok(`FETCH 1 (FLAGS) (CHANGEDSINCE 1)`)
	if got[0] != fmt.Sprintf("* OK [HIGHESTMODSEQ %d] Highest", hm+2) {
		t.Fatalf("first FETCH CHANGEDSINCE: %q", got)
	}
}
