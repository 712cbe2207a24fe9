package mailbox

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"certmail/kv"
	"certmail/kv/keyspace"
)

func getMetadata(t *testing.T, s *Store, acct, mbox string, depth MetadataDepth, names ...string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	if err := s.View(func(tx *Tx) error {
		got, err := tx.Metadata(acct, mbox, names, depth)
		for _, e := range got {
			out[e.Name] = string(e.Value)
		}
		return err
	}); err != nil {
		t.Fatalf("Metadata(%q, %q): %v", acct, mbox, err)
	}
	return out
}

func setMetadata(s *Store, acct, mbox string, lim MetadataLimits, kv ...string) error {
	var entries []MetadataEntry
	for i := 0; i < len(kv); i += 2 {
		e := MetadataEntry{Name: kv[i]}
		if kv[i+1] != "<nil>" {
			e.Value = []byte(kv[i+1])
		}
		entries = append(entries, e)
	}
	return s.Update(func(tx *Tx) error { return tx.SetMetadata(acct, mbox, entries, lim) })
}

// TestMetadataEntries: server and mailbox entries on the suite's engine:
// depth, case folding, removal, limits (all or none), a rename taking
// them along, a delete and an account deletion removing them, every key
// under the claimed prefix.
func TestMetadataEntries(t *testing.T) {
	s := openTestStore(t)
	newAccount(t, s, "carol")
	newAccount(t, s, "dave")
	var none MetadataLimits
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(setMetadata(s, "carol", "", none, "/private/devicetoken", "tok"))
	must(setMetadata(s, "carol", "INBOX", none, "/private/Comment", "mine", "/shared/a/b", "ab", "/shared/a/b/c", "abc", "/shared/a/x", ""))
	if got := getMetadata(t, s, "carol", "", MetadataDepthZero, "/private/devicetoken"); got["/private/devicetoken"] != "tok" || len(got) != 1 {
		t.Errorf("server entry: %v", got)
	}
	if got := getMetadata(t, s, "dave", "", MetadataDepthInfinity, "/private"); len(got) != 0 {
		t.Errorf("another account sees %v", got)
	}
	if got := getMetadata(t, s, "carol", "inbox", MetadataDepthZero, "/PRIVATE/comment"); got["/private/comment"] != "mine" {
		t.Errorf("case-insensitive read: %v", got)
	}
	if got := getMetadata(t, s, "carol", "INBOX", MetadataDepthOne, "/shared/a"); len(got) != 2 || got["/shared/a/b"] != "ab" || got["/shared/a/x"] != "" {
		t.Errorf("depth 1: %v", got)
	}
	if got := getMetadata(t, s, "carol", "INBOX", MetadataDepthInfinity, "/shared", "/shared/a"); len(got) != 3 {
		t.Errorf("depth infinity: %v", got)
	}
	if err := s.View(func(tx *Tx) error {
		_, err := tx.Metadata("carol", "nosuch", []string{"/private"}, MetadataDepthZero)
		return err
	}); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("missing mailbox: %v", err)
	}
	if err := setMetadata(s, "nobody", "", none, "/private/x", "y"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("missing account: %v", err)
	}

	// Limits: all or none.
	lim := MetadataLimits{MaxEntrySize: 4, MaxEntries: 6, MaxBytes: 1000}
	if err := setMetadata(s, "carol", "INBOX", lim, "/private/new", "1", "/private/big", "12345"); !errors.Is(err, ErrMetadataTooLarge) {
		t.Errorf("too large: %v", err)
	}
	if err := setMetadata(s, "carol", "INBOX", lim, "/private/n1", "1", "/private/n2", "2"); !errors.Is(err, ErrMetadataTooMany) {
		t.Errorf("too many: %v", err)
	}
	if got := getMetadata(t, s, "carol", "INBOX", MetadataDepthInfinity, "/private"); len(got) != 1 {
		t.Errorf("a refused SetMetadata changed entries: %v", got)
	}
	if err := setMetadata(s, "carol", "INBOX", MetadataLimits{MaxBytes: 10}, "/private/comment", "<nil>"); err != nil {
		t.Errorf("removing over a limit: %v", err)
	}

	// A rename takes entries along (children too); a delete removes them.
	must(s.Update(func(tx *Tx) error {
		for _, n := range []string{"p", "p/q"} {
			if _, err := tx.CreateMailbox("carol", NewMailbox{Name: n}); err != nil {
				return err
			}
		}
		return tx.SetMetadata("carol", "p/q", []MetadataEntry{{Name: "/private/c", Value: []byte("pq")}}, none)
	}))
	must(s.Update(func(tx *Tx) error { return tx.RenameMailbox("carol", "p", "r") }))
	if got := getMetadata(t, s, "carol", "r/q", MetadataDepthZero, "/private/c"); got["/private/c"] != "pq" {
		t.Errorf("after rename: %v", got)
	}
	must(s.DeleteMailbox("carol", "r/q"))
	must(s.Update(func(tx *Tx) error {
		_, err := tx.CreateMailbox("carol", NewMailbox{Name: "r/q"})
		return err
	}))
	if got := getMetadata(t, s, "carol", "r/q", MetadataDepthInfinity, "/private"); len(got) != 0 {
		t.Errorf("a mailbox created again finds %v", got)
	}

	// Every key is claimed; deleting the account leaves no entry.
	n := 0
	must(s.db.Dump(func(k, _ []byte) error {
		if bytes.HasPrefix(k, []byte(keyspace.Metadata)) {
			n++
		}
		if keyspace.Owner(k) == "" {
			t.Errorf("key %q is under no claimed prefix", k)
		}
		return nil
	}))
	if n == 0 {
		t.Fatal("no metadata key in the store")
	}
	must(s.DeleteAccount("carol"))
	must(s.db.Dump(func(k, _ []byte) error {
		if bytes.HasPrefix(k, []byte(keyspace.Metadata)) {
			t.Errorf("key %q left after the account's deletion", k)
		}
		return nil
	}))
}

// TestMetadataStreamed: entries cross an engine-neutral stream (backups
// and migrate): a store loaded from the suite engine's stream has them.
func TestMetadataStreamed(t *testing.T) {
	s := openTestStore(t)
	newAccount(t, s, "carol")
	if err := setMetadata(s, "carol", "", MetadataLimits{}, "/private/devicetoken", "tok"); err != nil {
		t.Fatal(err)
	}
	if err := setMetadata(s, "carol", "Sent", MetadataLimits{}, "/shared/comment", "sent mail"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := kv.WriteStream(&buf, s.Engine()); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "loaded")
	if _, err := Load(Options{Dir: dir, GCInterval: -1}, &buf, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := openBadgerAt(t, Options{Dir: dir, GCInterval: -1})
	defer dst.Close()
	if got := getMetadata(t, dst, "carol", "", MetadataDepthZero, "/private/devicetoken"); got["/private/devicetoken"] != "tok" {
		t.Errorf("server entry after the stream: %v", got)
	}
	if got := getMetadata(t, dst, "carol", "Sent", MetadataDepthZero, "/shared/comment"); got["/shared/comment"] != "sent mail" {
		t.Errorf("mailbox entry after the stream: %v", got)
	}
}
