package imapsrv_test

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestEnvelopeAddresses: ENVELOPE's address lists (RFC 3501 7.4.2) keep
// RFC 5322 groups as start (NIL NIL "name" NIL) and end (NIL NIL NIL NIL)
// markers, a route address's route, and addresses with comments (a
// comment is the name when there is none); they were flattened, or the
// whole field NIL. The messages are imaptest's fetch-envelope ones.
func TestEnvelopeAddresses(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	const date = "Date: Thu, 15 Feb 2007 01:02:03 +0200\r\n"
	msgs := []string{
		date + "From: user@domain (Real Name)\r\n" +
			"To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\r\n" +
			"Cc: group:;, group2: (foo) ;\r\n\r\nbody\r\n",
		date + "From: <@route:user@domain>\r\n\r\nbody\r\n",
		date + "From: <user-from (comment)@ (comment) domain.org>\r\n" +
			"To: Real To <@a.example,@b.example:to@domain.org>, plain@domain.org\r\n\r\nbody\r\n",
	}
	for _, m := range msgs {
		ts.deliver("alice", "INBOX", m)
	}
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	want := []string{
		`* 1 FETCH (UID 1 ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" NIL (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) ((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org") (NIL NIL "g2" "d2.org") (NIL NIL NIL NIL) (NIL NIL "group2" NIL) (NIL NIL "g3" "d3.org") (NIL NIL NIL NIL)) ((NIL NIL "group" NIL) (NIL NIL NIL NIL) (NIL NIL "group2" NIL) (NIL NIL NIL NIL)) NIL NIL NIL))`,
		`* 2 FETCH (UID 2 ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" NIL ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) NIL NIL NIL NIL NIL))`,
		`* 3 FETCH (UID 3 ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" NIL ((NIL NIL "user-from" "domain.org")) ((NIL NIL "user-from" "domain.org")) ((NIL NIL "user-from" "domain.org")) (("Real To" "@a.example,@b.example" "to" "domain.org") (NIL NIL "plain" "domain.org")) NIL NIL NIL NIL))`,
	}
	got := rc.ok(`FETCH 1:* ENVELOPE`)
	if len(got) != len(want) {
		t.Fatalf("FETCH ENVELOPE: %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d:\n got %s\nwant %s", i+1, got[i], want[i])
		}
	}

	// go-imap's client reads the route and the group markers.
	c := ts.client("alice")
	c.selectBox("INBOX")
	fetched, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if to := fetched[0].Envelope.To; len(to) != 7 || !to[0].IsGroupStart() || to[0].Mailbox != "group" || !to[3].IsGroupEnd() {
		t.Errorf("client: To %+v", to)
	}
	if from := fetched[1].Envelope.From; len(from) != 1 || from[0].Route != "@route" || from[0].Addr() != "user@domain" {
		t.Errorf("client: From %+v", from)
	}
}

// TestSearchAddresses: SEARCH FROM/TO/CC/BCC match the addresses as
// ENVELOPE shows them, not only the raw field: an address with comments
// inside it, a group's member, a route address (imaptest's
// search-addresses group).
func TestSearchAddresses(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", "From: <user-from (comment)@ (comment) domain.org>\r\nTo: <user-to@domain.org>\r\n\r\nbody\r\n")
	ts.deliver("alice", "INBOX", "From: Real From <user-from@domain.org>\r\nCc: team: a@b.example, c@d.example;\r\n\r\nbody\r\n")
	ts.deliver("alice", "INBOX", "From: <@relay.example:routed@domain.org>\r\nBcc: other@domain.org\r\n\r\nbody\r\n")
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	for cmd, want := range map[string]string{
		`SEARCH FROM user-from@domain.org`: "* SEARCH 1 2",
		`SEARCH FROM "Real From"`:          "* SEARCH 2",
		`SEARCH CC c@d.example`:            "* SEARCH 2",
		`SEARCH CC team`:                   "* SEARCH 2",
		`SEARCH FROM routed@domain.org`:    "* SEARCH 3",
		`SEARCH TO user-to@domain.org`:     "* SEARCH 1",
		`SEARCH BCC other@domain.org`:      "* SEARCH 3",
		`SEARCH FROM nobody@domain.org`:    "* SEARCH",
	} {
		if got := rc.ok(cmd); len(got) != 1 || strings.TrimSpace(got[0]) != want {
			t.Errorf("%s: %q, want %q", cmd, got, want)
		}
	}
}
