package certified_test

import (
	"errors"
	"testing"

	"github.com/emersion/go-imap/v2"

	"certmail/certified"
	"certmail/mailbox"
)

// TestHeldMCountsAgainstQuota: a certified item's M counts against the
// recipient's quota while it is held (issue 14), so an item that does not
// fit is refused; once released, M counts as the message in INBOX, once,
// and the usage is again exactly what the mailboxes hold.
func TestHeldMCountsAgainstQuota(t *testing.T) {
	e := newEnv(t)
	mailboxBytes := func() int64 {
		var n int64
		boxes, err := e.store.ListMailboxes("alice")
		if err != nil {
			t.Fatal(err)
		}
		for _, mb := range boxes {
			_, st, err := e.store.Status("alice", mb.Name)
			if err != nil {
				t.Fatal(err)
			}
			n += st.Size
		}
		return n
	}
	it := e.post(certified.Spec{})
	q, err := e.store.Quota("alice")
	if err != nil {
		t.Fatal(err)
	}
	if want := mailboxBytes() + int64(len(heldMessage)); q.StorageUsed != want || it.HeldSize != int64(len(heldMessage)) {
		t.Fatalf("usage with M held: %d, want the stub and M, %d (held %d)", q.StorageUsed, want, it.HeldSize)
	}
	// A second item does not fit.
	limit := q.StorageUsed + int64(len(heldMessage))
	if err := e.store.SetQuota("alice", &limit, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		_, err := e.svc.Post(tx, certified.PostRequest{Raw: heldMessage, Sender: "clerk@court.example", Recipient: "alice", Spec: certified.Spec{}})
		return err
	}); !errors.Is(err, mailbox.ErrOverQuota) {
		t.Fatalf("an item past the quota: %v, want ErrOverQuota", err)
	}
	// At the limit, the acknowledgement still releases M (counted
	// already) and stores the receipt.
	full := q.StorageUsed
	if err := e.store.SetQuota("alice", &full, nil); err != nil {
		t.Fatal(err)
	}
	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait(); err != nil {
		t.Fatalf("acknowledging at the limit: %v", err)
	}
	if got, _ := e.svc.Item(it.Label); got.State != certified.StateReleased {
		t.Fatalf("item state %s", got.State)
	}
	if q, _ := e.store.Quota("alice"); q.StorageUsed != mailboxBytes() {
		t.Fatalf("usage after the release: %d, the mailboxes hold %d", q.StorageUsed, mailboxBytes())
	}
}
