package certified_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"certmail/certified"
	"certmail/imapsrv"
	"certmail/kv/testengine"
	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

const secret = "Zanzibar-quokka-7731"

// heldMessage is M: every part of it carries the secret word, so that any
// leak of M through the stub shows.
var heldMessage = []byte("From: Court Clerk <clerk@court.example>\r\n" +
	"To: alice@example.org\r\n" +
	"Subject: Summons " + secret + "\r\n" +
	"Message-ID: <summons@court.example>\r\n" +
	"X-Secret: " + secret + "\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain\r\n\r\n" +
	"You are summoned. Case " + secret + ".\r\n" + strings.Repeat("padding line\r\n", 400))

// engines is the engine the suite runs on: Badger, or PostgreSQL with
// CERTMAIL_TEST_ENGINE=postgres (kv/testengine).
var engines testengine.Engines

func TestMain(m *testing.M) { os.Exit(engines.Main(m)) }

type env struct {
	t     *testing.T
	store *mailbox.Store
	svc   *certified.Service
	addr  string
	gwKey ed25519.PrivateKey
	now   time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	store, err := mailbox.Open(mailbox.Options{Dir: t.TempDir(), Engine: engines.Open(t), Summarize: imapsrv.Summarize, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	gw, err := receipts.LoadOrCreateGatewayKey(filepath.Join(t.TempDir(), "gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := evidence.NewSigner("mail.example.org", gw)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := evidence.NewLog(signer, "mail.example.org/certmail")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, gwKey: gw, now: time.Now().UTC()}
	e.svc = certified.New(store, lg, certified.Options{Gateway: "mail.example.org", Now: func() time.Time { return e.now }})
	for _, u := range []string{"alice", "mallory"} {
		if err := store.CreateAccount(u, u+"-pw", append(mailbox.DefaultMailboxes(), certified.Mailboxes()...)); err != nil {
			t.Fatal(err)
		}
		if err := store.Update(func(tx *mailbox.Tx) error { return certified.ProvisionCustody(tx, u, u+"-pw") }); err != nil {
			t.Fatal(err)
		}
	}
	srv := imapsrv.New(store, imapsrv.Options{Hooks: e.svc})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.addr = ln.Addr().String()
	return e
}

func (e *env) post(spec certified.Spec) *certified.Item {
	e.t.Helper()
	var it *certified.Item
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		var err error
		it, err = e.svc.Post(tx, certified.PostRequest{Raw: heldMessage, Sender: "clerk@court.example", Recipient: "alice", Spec: spec})
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return it
}

func (e *env) login(user string) *imapclient.Client {
	e.t.Helper()
	c, err := imapclient.DialInsecure(e.addr, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Login(user, user+"-pw").Wait(); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func fetchAll(t *testing.T, c *imapclient.Client, seq imap.NumSet, opts *imap.FetchOptions) []*imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(seq, opts).Collect()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestStubRevealsNothingOfM(t *testing.T) {
	e := newEnv(t)
	it := e.post(certified.Spec{Reveal: certified.RevealNone})
	c := e.login("alice")
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("select: %v %+v", err, sel)
	}
	var sections []*imap.FetchItemBodySection
	for _, spec := range []imap.PartSpecifier{imap.PartSpecifierNone, imap.PartSpecifierHeader, imap.PartSpecifierText} {
		sections = append(sections, &imap.FetchItemBodySection{Specifier: spec, Peek: true})
	}
	for _, part := range [][]int{{1}, {2}, {1, 1}, {1, 2}, {3}} {
		sections = append(sections, &imap.FetchItemBodySection{Part: part, Peek: true})
		sections = append(sections, &imap.FetchItemBodySection{Part: part, Specifier: imap.PartSpecifierMIME, Peek: true})
	}
	msgs := fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{
		Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, RFC822Size: true,
		BodySection: sections, BinarySection: []*imap.FetchItemBinarySection{{Part: []int{1, 1}, Peek: true}},
	})
	m := msgs[0]
	var all bytes.Buffer
	for _, b := range m.BodySection {
		all.Write(b.Bytes)
	}
	for _, b := range m.BinarySection {
		all.Write(b.Bytes)
	}
	if bytes.Contains(all.Bytes(), []byte(secret)) || bytes.Contains(all.Bytes(), []byte("summoned")) || bytes.Contains(all.Bytes(), []byte("clerk@court")) {
		t.Fatalf("the stub leaks M:\n%s", all.String())
	}
	if !bytes.Contains(all.Bytes(), []byte(it.Label)) || !bytes.Contains(all.Bytes(), []byte(it.Hash)) {
		t.Fatalf("stub lacks the label or hash:\n%s", all.String())
	}
	if strings.Contains(m.Envelope.Subject, secret) || m.RFC822Size >= int64(len(heldMessage)) && m.RFC822Size == int64(len(heldMessage)) {
		t.Fatalf("envelope or size leaks M: %q %d", m.Envelope.Subject, m.RFC822Size)
	}
	for _, crit := range []imap.SearchCriteria{
		{Body: []string{secret}}, {Text: []string{secret}}, {Text: []string{"summoned"}},
		{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: secret}}},
		{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Secret", Value: ""}}},
		{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "clerk"}}},
		{Larger: int64(len(heldMessage)) - 1},
	} {
		res, err := c.Search(&crit, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.AllSeqNums()) != 0 {
			t.Fatalf("SEARCH %+v finds the stub: M leaks", crit)
		}
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{Size: true, NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.Size != m.RFC822Size {
		t.Fatalf("STATUS SIZE %d counts more than the stub (%d bytes)", *st.Size, m.RFC822Size)
	}
}

func TestAcknowledgeByMoveReleasesM(t *testing.T) {
	e := newEnv(t)
	it := e.post(certified.Spec{Reveal: certified.RevealSenderSubject})
	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Mallory cannot acknowledge Alice's item, even with a copy of the stub.
	raw := fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})[0].BodySection[0].Bytes
	mc := e.login("mallory")
	ac := mc.Append("INBOX", int64(len(raw)), nil)
	ac.Write(raw)
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait(); err == nil || !strings.Contains(err.Error(), "not the gateway's stub") {
		t.Fatalf("mallory's forged stub: %v", err)
	}

	data, err := c.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait()
	if err != nil {
		t.Fatalf("MOVE to Acknowledge: %v", err)
	}
	if data == nil || len(data.DestUIDs.(imap.UIDSet)) == 0 {
		t.Fatalf("no COPYUID: %+v", data)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	res, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	uids := res.AllUIDs()
	if len(uids) != 1 {
		t.Fatalf("INBOX after acknowledging: UIDs %v, want only M", uids)
	}
	m := fetchAll(t, c, imap.UIDSetNum(uids[0]), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})[0]
	if !bytes.Equal(m.BodySection[0].Bytes, heldMessage) {
		t.Fatal("released message differs from M")
	}
	got, err := e.svc.Item(it.Label)
	if err != nil || got.State != certified.StateReleased || got.Signer != "alice" || got.Custody != string(receipts.CustodyGatewayHeld) {
		t.Fatalf("item after COD: %+v %v", got, err)
	}
	// The receipt in Acknowledge carries the COD.
	st, err := c.Status(certified.AckMailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 1 {
		t.Fatalf("Acknowledge: %+v %v", st, err)
	}
	// The evidence verifies offline, and H(L,r,M) matches M with the r it
	// releases.
	b, err := e.svc.Bundle(it.Label)
	if err != nil {
		t.Fatal(err)
	}
	v, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: e.gwKey.Public().(ed25519.PublicKey), Message: bytes.NewReader(heldMessage)})
	if err != nil {
		t.Fatalf("bundle does not verify: %v", err)
	}
	if !strings.Contains(v.String(), "alice") {
		t.Fatalf("verdict does not name the signer:\n%s", v)
	}
	// A second acknowledgement is refused: nothing is left to sign.
	if _, err := c.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait(); err == nil {
		t.Fatal("moving M itself to Acknowledge succeeded")
	}
}

func TestAcknowledgeWithOwnKeyByAppend(t *testing.T) {
	e := newEnv(t)
	it := e.post(certified.Spec{})
	priv, _ := receipts.GenerateKey()
	c := e.login("alice")
	appendCOD := func(cod string) error {
		ac := c.Append(certified.AckMailbox, int64(len(cod)), nil)
		ac.Write([]byte(cod))
		ac.Close()
		_, err := ac.Wait()
		return err
	}
	req := receipts.NewCODRequest("mail.example.org", it.Label, it.HashBytes(), "alice", it.Deadline)
	cod, err := receipts.SignCOD(priv, req.Claims(receipts.DecisionCOD, receipts.CustodyRecipientHeld, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if err := appendCOD(cod); err == nil || !strings.Contains(err.Error(), "register") {
		t.Fatalf("COD with an unregistered key: %v", err)
	}
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		_, err := certified.RegisterKey(tx, "alice", priv.Public().(ed25519.PublicKey))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	bad := []byte(cod)
	bad[len(bad)-5] ^= 1
	if err := appendCOD(string(bad)); err == nil {
		t.Fatal("a tampered COD was accepted")
	}
	if err := appendCOD("not a COD at all"); err == nil || !strings.Contains(err.Error(), "no COD") {
		t.Fatalf("garbage COD: %v", err)
	}
	if err := appendCOD(cod); err != nil {
		t.Fatalf("valid COD: %v", err)
	}
	got, _ := e.svc.Item(it.Label)
	if got.State != certified.StateReleased || got.Custody != string(receipts.CustodyRecipientHeld) {
		t.Fatalf("item: %+v", got)
	}
}

func TestRefuseAndExpire(t *testing.T) {
	e := newEnv(t)
	refusedItem := e.post(certified.Spec{})
	expiring := e.post(certified.Spec{Deadline: e.now.Add(time.Hour)})
	deemed := e.post(certified.Spec{Deadline: e.now.Add(2 * time.Hour), OnExpiry: certified.OnExpiryDeemedDelivery})
	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	res, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: certified.LabelHeader, Value: refusedItem.Label}}}, nil).Wait()
	if err != nil || len(res.AllSeqNums()) != 1 {
		t.Fatalf("finding the stub: %v %v", res, err)
	}
	if _, err := c.Move(imap.SeqSetNum(res.AllSeqNums()...), certified.RefuseMailbox).Wait(); err != nil {
		t.Fatalf("MOVE to Refuse: %v", err)
	}
	if got, _ := e.svc.Item(refusedItem.Label); got.State != certified.StateRefused {
		t.Fatalf("refused item: %+v", got)
	}

	// Time passes: the timers fire.
	e.now = e.now.Add(3 * time.Hour)
	due, err := e.store.DueTimers(e.now, 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("due timers: %v %v", due, err)
	}
	h := e.svc.Handlers()
	for _, tm := range due {
		if fired, err := e.store.FireTimer(context.Background(), tm, h[tm.Kind]); err != nil || !fired {
			t.Fatal(fired, err)
		}
	}
	if got, _ := e.svc.Item(expiring.Label); got.State != certified.StateExpired {
		t.Fatalf("expired item: %+v", got)
	}
	if got, _ := e.svc.Item(deemed.Label); got.State != certified.StateDeemed {
		t.Fatalf("deemed item: %+v", got)
	}
	if left, _ := e.store.DueTimers(e.now.Add(1000*time.Hour), 10); len(left) != 0 {
		t.Fatalf("timers left after settling: %v", left)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	// Only the deemed-delivered M remains in INBOX.
	msgs := fetchAll(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	sel, _ := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if *sel.NumMessages != 1 || !bytes.Equal(msgs[0].BodySection[0].Bytes, heldMessage) {
		t.Fatalf("INBOX after expiry: %d messages", *sel.NumMessages)
	}
	for _, it := range []*certified.Item{refusedItem, expiring, deemed} {
		b, err := e.svc.Bundle(it.Label)
		if err != nil {
			t.Fatal(err)
		}
		v, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: e.gwKey.Public().(ed25519.PublicKey)})
		if err != nil {
			t.Fatalf("bundle of %s: %v", it.Label, err)
		}
		// The salt goes out with M and only then: on deemed delivery, not
		// on refusal or non-delivery.
		if released := it == deemed; (v.Salt != "") != released || released && v.Salt != it.Salt {
			t.Fatalf("bundle of %s (%s) releases salt %q, item holds %q", it.Label, v.State, v.Salt, it.Salt)
		}
	}
	if _, err := evidence.Verify(mustBundle(t, e, deemed.Label), evidence.VerifyOptions{
		GatewayKey: e.gwKey.Public().(ed25519.PublicKey), Message: bytes.NewReader(heldMessage)}); err != nil {
		t.Fatalf("the deemed-delivered M does not check with the released salt: %v", err)
	}
}

func mustBundle(t *testing.T, e *env, label string) *evidence.Bundle {
	t.Helper()
	b, err := e.svc.Bundle(label)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInvalidCODs hands in every kind of bad COD by APPEND and checks each
// is refused with a reason, leaves the item held, and is recorded.
func TestInvalidCODs(t *testing.T) {
	e := newEnv(t)
	it := e.post(certified.Spec{})
	other := e.post(certified.Spec{})
	priv, _ := receipts.GenerateKey()
	stranger, _ := receipts.GenerateKey()
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		_, err := certified.RegisterKey(tx, "alice", priv.Public().(ed25519.PublicKey))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sign := func(key ed25519.PrivateKey, mutate func(*receipts.CODClaims)) string {
		req := receipts.NewCODRequest("mail.example.org", it.Label, it.HashBytes(), "alice", it.Deadline)
		c := req.Claims(receipts.DecisionCOD, receipts.CustodyRecipientHeld, time.Now())
		if mutate != nil {
			mutate(&c)
		}
		cod, err := receipts.SignCOD(key, c)
		if err != nil {
			t.Fatal(err)
		}
		return cod
	}
	good := sign(priv, nil)
	c := e.login("alice")
	appendCOD := func(cod string) error {
		ac := c.Append(certified.AckMailbox, int64(len(cod)), nil)
		ac.Write([]byte(cod))
		ac.Close()
		_, err := ac.Wait()
		return err
	}
	cases := []struct {
		name, cod, want string
	}{
		{"wrong key", sign(stranger, nil), "no registered key"},
		{"another recipient", sign(priv, func(c *receipts.CODClaims) { c.Recipient = "mallory" }), "signed for"},
		{"wrong hash", sign(priv, func(c *receipts.CODClaims) { c.Hash = other.Hash }), "COD does not match"},
		{"wrong gateway", sign(priv, func(c *receipts.CODClaims) { c.Gateway = "evil.example" }), "COD does not match"},
		{"unknown label", sign(priv, func(c *receipts.CODClaims) { c.Label = "cm-aaaaaaaaaaaaaaaaaaaaaaaaaa" }), "unknown item"},
		{"replay for another item", sign(priv, func(c *receipts.CODClaims) { c.Label = other.Label }), "COD does not match"},
		{"truncated", good[:len(good)-10], "COD"},
		{"malformed", "eyJhbGciOiJFZERTQSJ9.bm90IGpzb24.c2ln", "COD"},
		{"claims gateway custody", sign(priv, func(c *receipts.CODClaims) { c.Custody = receipts.CustodyGatewayHeld }), "custody"},
		// Issue 11, item 14: a COD dated outside the item's life is false.
		{"signed a day before posting", sign(priv, func(c *receipts.CODClaims) { c.SignedAt = it.Posted.Add(-24 * time.Hour) }), "before the item was posted"},
		{"signed just beyond the clock tolerance", sign(priv, func(c *receipts.CODClaims) {
			c.SignedAt = it.Posted.Add(-receipts.CODClockTolerance - time.Minute)
		}), "before the item was posted"},
		{"signed after the deadline", sign(priv, func(c *receipts.CODClaims) { c.SignedAt = it.Deadline.Add(time.Hour) }), "after the deadline"},
		{"signed in the future", sign(priv, func(c *receipts.CODClaims) { c.SignedAt = it.Posted.Add(time.Hour) }), "after the gateway received it"},
	}
	for _, tc := range cases {
		err := appendCOD(tc.cod)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if got, _ := e.svc.Item(it.Label); !got.Pending() {
		t.Fatalf("item no longer held after bad CODs: %+v", got)
	}
	var attempts []certified.Attempt
	e.store.View(func(tx *mailbox.Tx) error {
		var err error
		attempts, err = certified.Attempts(tx, it.Label)
		return err
	})
	if len(attempts) < 3 {
		t.Fatalf("refused CODs were not recorded: %+v", attempts)
	}
	// A signer whose clock runs a little behind the gateway's is believed.
	slow := sign(priv, func(c *receipts.CODClaims) { c.SignedAt = it.Posted.Add(-receipts.CODClockTolerance + time.Minute) })
	if err := appendCOD(slow); err != nil {
		t.Fatalf("a COD signed within the clock tolerance before posting: %v", err)
	}
	if err := appendCOD(slow); err == nil || !strings.Contains(err.Error(), "already released") {
		t.Fatalf("replaying the COD of a released item: %v", err)
	}
	if err := appendCOD(good); err == nil || !strings.Contains(err.Error(), "already released") {
		t.Fatalf("another COD for a released item: %v", err)
	}
}

// TestIdleSeesExpungeThenExists: a second session IDLEing in INBOX sees
// the stub leave and M arrive, in that order, when the item is released.
func TestIdleSeesExpungeThenExists(t *testing.T) {
	e := newEnv(t)
	e.post(certified.Spec{})
	events := make(chan string, 10)
	watcher, err := imapclient.DialInsecure(e.addr, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { events <- fmt.Sprintf("EXPUNGE %d", seq) },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				events <- fmt.Sprintf("EXISTS %d", *d.NumMessages)
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	if err := watcher.Login("alice", "alice-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := watcher.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := watcher.Idle()
	if err != nil {
		t.Fatal(err)
	}
	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), certified.AckMailbox).Wait(); err != nil {
		t.Fatal(err)
	}
	var got []string
	timeout := time.After(5 * time.Second)
	for len(got) < 2 {
		select {
		case ev := <-events:
			got = append(got, ev)
		case <-timeout:
			t.Fatalf("IDLE saw only %v", got)
		}
	}
	idle.Close()
	idle.Wait()
	if got[0] != "EXPUNGE 1" || got[1] != "EXISTS 1" {
		t.Fatalf("IDLE saw %v, want [EXPUNGE 1 EXISTS 1]", got)
	}
}
