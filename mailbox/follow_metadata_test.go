package mailbox

import (
	"slices"
	"testing"
	"time"

	"certmail/kv/pgkv"
)

// TestFollowMetadata: METADATA entries set and removed on node A, on a
// mailbox and on the server, reach node B's change feed as
// MetadataChanged, naming the account, the mailbox and the entry, once
// each (what NOTIFY's MailboxMetadataChange and ServerMetadataChange are
// made of, RFC 5465 5.6); the other nodes' sessions would otherwise never
// hear of them.
func TestFollowMetadata(t *testing.T) {
	nodes := openFollowNodes(t, 2, pgkv.Options{}, Options{})
	a, b := nodes[0], nodes[1]
	inbox := newAccount(t, a, "meta")
	feedB := recordFeed(b)
	set := func(box string, entries ...MetadataEntry) {
		t.Helper()
		if err := a.Update(func(tx *Tx) error { return tx.SetMetadata("meta", box, entries, MetadataLimits{}) }); err != nil {
			t.Fatal(err)
		}
	}
	set("INBOX", MetadataEntry{Name: "/private/Comment", Value: []byte("mine")})
	set("", MetadataEntry{Name: "/private/vendor/x", Value: []byte("server")})
	set("INBOX", MetadataEntry{Name: "/private/comment"}) // removed
	is := func(id uint32, box, entry string) func(Change) bool {
		return func(c Change) bool {
			return c.Kind == MetadataChanged && c.Account == "meta" && c.MailboxID == id && c.Mailbox == box && c.Entry == entry
		}
	}
	_, d := feedB.waitFor(t, 2*time.Second, "INBOX's /private/comment", is(inbox.ID, "INBOX", "/private/comment"))
	t.Logf("B heard of A's SETMETADATA after %v", d)
	feedB.waitFor(t, 2*time.Second, "the server's /private/vendor/x", is(ServerMetadataID, "", "/private/vendor/x"))
	deadline := time.Now().Add(2 * time.Second)
	for {
		var got []string
		for _, c := range feedB.snapshot() {
			if c.Kind == MetadataChanged {
				got = append(got, c.Mailbox+" "+c.Entry)
			}
		}
		want := []string{"INBOX /private/comment", " /private/vendor/x", "INBOX /private/comment"}
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's MetadataChanged: %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
