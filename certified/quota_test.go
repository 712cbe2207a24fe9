package certified_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"

	"certmail/certified"
	"certmail/mailbox"
)

// TestHeldMCountsAgainstQuota: a certified item's M counts against the
// recipient's quota while it is held (issue 14), as HeldQuotaCharge, so
// an item that does not fit is refused; once released, M counts as the
// message in INBOX, once, and the usage is again exactly what the
// mailboxes hold.
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
	if want := mailboxBytes() + certified.HeldQuotaCharge(int64(len(heldMessage))); q.StorageUsed != want || it.HeldSize != 64<<10 {
		t.Fatalf("usage with M held: %d, want the stub and M, %d (held %d)", q.StorageUsed, want, it.HeldSize)
	}
	// A second item does not fit.
	limit := q.StorageUsed + it.HeldSize
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

// TestQuotaRevealsNotSizeOfM extends the stub-leak tests to QUOTA: two
// items whose M differ in size by a factor of four (within one bucket)
// leave the recipient's usage, as GETQUOTAROOT shows it, exactly the
// same.
func TestQuotaRevealsNotSizeOfM(t *testing.T) {
	usageAfter := func(m []byte) string {
		e := newEnv(t)
		if err := e.store.Update(func(tx *mailbox.Tx) error {
			_, err := e.svc.Post(tx, certified.PostRequest{Raw: m, Sender: "clerk@court.example", Recipient: "alice", Spec: certified.Spec{Reveal: certified.RevealNone}})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		big := int64(1 << 30)
		if err := e.store.SetQuota("alice", &big, nil); err != nil {
			t.Fatal(err)
		}
		c := e.login("alice")
		data, err := c.GetQuotaRoot("INBOX").Wait()
		if err != nil || len(data) != 1 {
			t.Fatalf("GETQUOTAROOT: %v %+v", err, data)
		}
		return fmt.Sprint(data[0].Resources)
	}
	small := append(append([]byte(nil), heldMessage...), bytes.Repeat([]byte("x"), 5000)...)
	large := append(append([]byte(nil), heldMessage...), bytes.Repeat([]byte("x"), 20000)...)
	if a, b := usageAfter(small), usageAfter(large); a != b {
		t.Fatalf("GETQUOTAROOT tells the two items apart: %s and %s", a, b)
	}
}
