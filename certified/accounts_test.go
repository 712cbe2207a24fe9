package certified_test

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"certmail/certified"
	"certmail/mailbox"
	"certmail/receipts/evidence"
)

// TestDeleteAccountEndsItsItems: deleting alice settles her pending item
// as non-delivery (evidence, stubs withdrawn, M dropped, no deemed
// delivery), takes her off an item she was an alternate for, and moves
// her keys aside, while the item she acknowledged before still verifies
// with the key she signed with. An account created again as alice has
// only its own key and holds nothing.
func TestDeleteAccountEndsItsItems(t *testing.T) {
	e := newEnv(t)
	done := e.post(certified.Spec{})
	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	pending := e.post(certified.Spec{OnExpiry: certified.OnExpiryDeemedDelivery})
	var other *certified.Item
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		var err error
		other, err = e.svc.Post(tx, certified.PostRequest{Raw: heldMessage, Sender: "clerk@court.example", Recipient: "mallory"})
		if err != nil {
			return err
		}
		_, err = e.svc.ForwardStub(tx, other.Label, "mallory", []string{"alice"}, "test", "test", false)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	if err := e.store.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	it, err := e.svc.Item(pending.Label)
	if err != nil || it.State != certified.StateExpired {
		t.Fatalf("alice's pending item after the deletion: %+v %v", it, err)
	}
	b, err := e.svc.Bundle(pending.Label)
	if err != nil {
		t.Fatal(err)
	}
	gw := e.gwKey.Public().(ed25519.PublicKey)
	v, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: gw})
	if err != nil || !strings.Contains(v.String(), "ContentConsignmentFailure") || !strings.Contains(v.String(), "account alice was deleted") {
		t.Fatalf("evidence of the pending item: %v\n%s", err, v)
	}
	// The item she had acknowledged still verifies: her key is in its
	// bundle.
	b, err = e.svc.Bundle(done.Label)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: gw, Message: bytes.NewReader(heldMessage)}); err != nil {
		t.Fatalf("the acknowledged item no longer verifies: %v", err)
	}
	it, err = e.svc.Item(other.Label)
	if err != nil || it.IsHolder("alice") || !it.Pending() {
		t.Fatalf("mallory's item after the deletion of its alternate: %+v %v", it, err)
	}

	// The name again.
	if err := e.store.CreateAccount("alice", "new-pw", append(mailbox.DefaultMailboxes(), certified.Mailboxes()...),
		func(tx *mailbox.Tx, acct string) error { return certified.ProvisionCustody(tx, acct, "new-pw") }); err != nil {
		t.Fatal(err)
	}
	if err := e.store.View(func(tx *mailbox.Tx) error {
		keys, err := certified.Keys(tx, "alice")
		if err != nil {
			return err
		}
		if len(keys) != 1 || !keys[0].Retired.IsZero() {
			t.Errorf("the new alice's keys: %+v", keys)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Deemed delivery never comes: the timer went with the item.
	if err := e.store.View(func(tx *mailbox.Tx) error {
		if _, ok, err := tx.TimerDue(certified.TimerExpiry, pending.Label); err != nil || ok {
			t.Errorf("the expiry timer of the pending item survived (%v)", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	inbox, err := e.store.Mailbox("alice", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if msgs, err := e.store.Messages("alice", inbox.ID); err != nil || len(msgs) != 0 {
		t.Fatalf("the new alice's INBOX holds %d messages (%v)", len(msgs), err)
	}
}

// TestDeleteAccountWithManyItems: an account with more pending items than
// one store transaction holds (a thousand did not fit) is still deleted,
// every item ending as non-delivery.
func TestDeleteAccountWithManyItems(t *testing.T) {
	e := newEnv(t)
	const n = 1000
	var labels []string
	for i := 0; i < n; i += 100 {
		var batch []string // of the attempt that commits
		if err := e.store.Update(func(tx *mailbox.Tx) error {
			batch = batch[:0]
			for j := 0; j < 100; j++ {
				it, err := e.svc.Post(tx, certified.PostRequest{Raw: heldMessage, Sender: "clerk@court.example", Recipient: "alice"})
				if err != nil {
					return err
				}
				batch = append(batch, it.Label)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		labels = append(labels, batch...)
	}
	start := time.Now()
	if err := e.store.DeleteAccount("alice"); err != nil {
		t.Fatalf("deleting an account with %d pending items: %v", n, err)
	}
	t.Logf("deleting an account with %d pending items took %v", n, time.Since(start))
	for _, l := range labels {
		it, err := e.svc.Item(l)
		if err != nil || it.State != certified.StateExpired {
			t.Fatalf("item %s after the deletion: %+v %v", l, it, err)
		}
	}
	if ok, _ := e.store.AccountExists("alice"); ok {
		t.Fatal("the account is still there")
	}
}
