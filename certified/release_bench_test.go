package certified_test

import (
	"crypto/ed25519"
	"path/filepath"
	"testing"
	"time"

	"certmail/certified"
	"certmail/imapsrv"
	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

// BenchmarkPostAndRelease is one certified item's whole life on the
// gateway: Post (hold M, stub to the INBOX, COP, evidence) and then the
// recipient's COD through SubmitCOD (verify, settle: stub out, M in,
// ROD, evidence), each its own store transaction, on a store on disk.
func BenchmarkPostAndRelease(b *testing.B) {
	store, err := mailbox.Open(mailbox.Options{Dir: b.TempDir(), Summarize: imapsrv.Summarize, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	gw, err := receipts.LoadOrCreateGatewayKey(filepath.Join(b.TempDir(), "gateway.key"))
	if err != nil {
		b.Fatal(err)
	}
	signer, err := evidence.NewSigner("mail.example.org", gw)
	if err != nil {
		b.Fatal(err)
	}
	lg, err := evidence.NewLog(signer, "mail.example.org/certmail")
	if err != nil {
		b.Fatal(err)
	}
	svc := certified.New(store, lg, certified.Options{Gateway: "mail.example.org"})
	if err := store.CreateAccount("alice", "alice-pw", append(mailbox.DefaultMailboxes(), certified.Mailboxes()...)); err != nil {
		b.Fatal(err)
	}
	priv, _ := receipts.GenerateKey()
	if err := store.Update(func(tx *mailbox.Tx) error {
		if err := certified.ProvisionCustody(tx, "alice", "alice-pw"); err != nil {
			return err
		}
		_, err := certified.RegisterKey(tx, "alice", priv.Public().(ed25519.PublicKey))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var it *certified.Item
		if err := store.Update(func(tx *mailbox.Tx) error {
			var err error
			it, err = svc.Post(tx, certified.PostRequest{Raw: heldMessage, Sender: "clerk@court.example", Recipient: "alice"})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		req := receipts.NewCODRequest("mail.example.org", it.Label, it.HashBytes(), "alice", it.Deadline)
		cod, err := receipts.SignCOD(priv, req.Claims(receipts.DecisionCOD, receipts.CustodyRecipientHeld, time.Now()))
		if err != nil {
			b.Fatal(err)
		}
		if err := svc.SubmitCOD("alice", cod); err != nil {
			b.Fatal(err)
		}
	}
}
