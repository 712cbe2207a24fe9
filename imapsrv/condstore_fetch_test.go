package imapsrv_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"certmail/imapsrv"
)

// FETCH MODSEQ and FETCH (CHANGEDSINCE m), RFC 7162 3.1.4 and its example
// in 3.1.4.1: only messages changed after m, each with its MODSEQ; the
// fast path (fetchfast.go) writes what imapserver's writer does.
func TestFetchChangedSince(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for i := 1; i <= 4; i++ {
		ts.deliver("alice", "INBOX", simpleMessage(fmt.Sprint(i), "body"))
	}
	rc := ts.rawLogin("alice")
	hm := codeNumber(t, rc.ok(`SELECT INBOX (CONDSTORE)`), "HIGHESTMODSEQ")

	other := ts.client("alice")
	other.selectBox("INBOX")
	if err := other.Store(imap.SeqSetNum(2, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Work"}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	rc.ok(`NOOP`)

	for _, slow := range []bool{false, true} {
		imapsrv.SetSlowFetch(ts.srv, slow)
		got := rc.ok(fmt.Sprintf(`FETCH 1:* (FLAGS) (CHANGEDSINCE %d)`, hm))
		want := []string{
			fmt.Sprintf(`* 2 FETCH (UID 2 FLAGS ($Work) MODSEQ (%d))`, hm+1),
			fmt.Sprintf(`* 4 FETCH (UID 4 FLAGS ($Work) MODSEQ (%d))`, hm+1),
		}
		if !slices.Equal(got, want) {
			t.Fatalf("slow=%v: FETCH CHANGEDSINCE:\n got %q\nwant %q", slow, got, want)
		}
		all := rc.ok(`UID FETCH 1:* (MODSEQ)`)
		if len(all) != 4 {
			t.Fatalf("UID FETCH MODSEQ: %q", all)
		}
		mustContain(t, all, fmt.Sprintf(`* 1 FETCH (UID 1 MODSEQ (%d))`, hm-3))
		if got := rc.ok(fmt.Sprintf(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)`, hm+1)); len(got) != 0 {
			t.Fatalf("nothing changed after %d, got %q", hm+1, got)
		}
	}
	rc.fail("BAD", `FETCH 1 (FLAGS) (NOSUCHMODIFIER 1)`)
	rc.fail("BAD", `FETCH 1 (FLAGS) (CHANGEDSINCE x)`)

	// go-imap's client.
	msgs, err := other.Fetch(imap.SeqSetNum(1, 2, 3, 4), &imap.FetchOptions{UID: true, Flags: true, ChangedSince: uint64(hm)}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].UID != 2 || msgs[1].UID != 4 || msgs[0].ModSeq != uint64(hm)+1 {
		t.Fatalf("client FETCH CHANGEDSINCE: %+v", msgs)
	}
}

// Before a CONDSTORE-enabling command, FETCH FLAGS carries no MODSEQ
// (RFC 7162 3.1).
func TestFetchNoModSeqBeforeEnabling(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("one", "body"))
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	if l := rc.ok(`FETCH 1 (FLAGS)`); len(l) != 1 || strings.Contains(l[0], "MODSEQ") {
		t.Fatalf("FETCH FLAGS: %q", l)
	}
	mustNotContain(t, rc.ok(`STORE 1 +FLAGS (\Seen)`), "MODSEQ")
}
