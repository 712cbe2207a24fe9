package api_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"certmail/api"
	"certmail/certified"
	"certmail/mailbox"
	"certmail/notifier"
	"certmail/receipts"
	"certmail/receipts/evidence"

	"certmail/kv"
)

const gateway = "mail.example.org"

var message = "From: Court Clerk <clerk@court.example>\r\n" +
	"To: alice@example.org\r\n" +
	"Subject: Summons\r\n" +
	"Message-ID: <summons@court.example>\r\n\r\n" +
	"You are summoned.\r\n"

// env is a real store, certified service and API behind a real HTTP
// server.
type env struct {
	t        testing.TB
	store    *mailbox.Store
	svc      *certified.Service
	api      *api.Server
	srv      *httptest.Server
	gwKey    ed25519.PrivateKey
	acme     string // a sender token
	other    string // another sender's token
	operator string
	notices  *noticeRecorder
}

// noticeRecorder is the certified service's outbox: it keeps what would
// be sent.
type noticeRecorder struct {
	mu   sync.Mutex
	sent []notifier.Notice
}

func (r *noticeRecorder) Enqueue(_ kv.Records, n notifier.Notice) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, n)
	return nil
}

// mailedTo lists the addresses mail notices were queued for.
func (r *noticeRecorder) mailedTo() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, n := range r.sent {
		out = append(out, n.To...)
	}
	return out
}

func newEnv(t testing.TB, maxMessage int64, opts ...func(*api.Options)) *env {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := mailbox.Open(mailbox.Options{Dir: t.TempDir(), GCInterval: -1, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	gw, err := receipts.LoadOrCreateGatewayKey(filepath.Join(t.TempDir(), "gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := evidence.NewSigner(gateway, gw)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := evidence.NewLog(signer, gateway+"/certmail/evidence")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, gwKey: gw, notices: &noticeRecorder{}}
	e.svc = certified.New(store, lg, certified.Options{Gateway: gateway, Logger: logger, Notices: e.notices})
	for _, u := range []string{"alice", "bob"} {
		if err := store.CreateAccount(u, u+"-pw", append(mailbox.DefaultMailboxes(), certified.Mailboxes()...), func(tx *mailbox.Tx, acct string) error {
			return certified.ProvisionCustody(tx, acct, u+"-pw")
		}); err != nil {
			t.Fatal(err)
		}
	}
	resolve := func(rcpt string) (string, error) {
		local, domain, _ := strings.Cut(rcpt, "@")
		if domain != "" && domain != "example.org" {
			return "", fmt.Errorf("<%s>: domain not served here", rcpt)
		}
		ok, err := store.AccountExists(local)
		if err != nil || !ok {
			return "", fmt.Errorf("<%s>: no such user", rcpt)
		}
		return local, nil
	}
	o := api.Options{Store: store, Certified: e.svc, Resolve: resolve, MaxMessageBytes: maxMessage, Logger: logger}
	for _, fn := range opts {
		fn(&o)
	}
	e.api = api.New(o)
	mux := http.NewServeMux()
	e.api.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.acme = e.addToken("acme", false)
	e.other = e.addToken("other", false)
	e.operator = e.addToken("ops", true)
	return e
}

func (e *env) addToken(name string, operator bool) string {
	e.t.Helper()
	var tok string
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		var err error
		tok, err = api.AddToken(tx, name, operator, time.Now())
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// body2label returns the first label of a submit answer.
func (r response) body2label(t testing.TB) string {
	t.Helper()
	var out api.SubmitResponse
	r.decode(t, &out)
	return out.Items[0].Label
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// errorText checks that the body is a JSON error and returns its text.
func (r response) errorText(t *testing.T) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("status %d: not a JSON error: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	return e.Error
}

func (e *env) do(method, path, token string, body []byte, hdr ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// submit posts the message for recipients with token acme and returns the
// items.
func (e *env) submit(token string, req map[string]any) []api.SubmittedItem {
	e.t.Helper()
	r := e.do("POST", "/v1/items", token, mustJSON(e.t, req))
	if r.status != http.StatusCreated {
		e.t.Fatalf("submit: %d %s", r.status, r.body)
	}
	var out api.SubmitResponse
	r.decode(e.t, &out)
	return out.Items
}

func (e *env) bundle(token, label string) *evidence.Bundle {
	e.t.Helper()
	r := e.do("GET", "/v1/items/"+label+"/evidence", token, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("evidence: %d %s", r.status, r.body)
	}
	b, err := evidence.ParseBundle(r.body)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) gatewayPub() ed25519.PublicKey { return e.gwKey.Public().(ed25519.PublicKey) }

func TestSubmitFollowAndVerify(t *testing.T) {
	e := newEnv(t, 0)
	items := e.submit(e.acme, map[string]any{"message": message, "recipients": []string{"alice"},
		"deadline": "48h", "reveal": "none", "on_expiry": "deemed-delivery"})
	if len(items) != 1 {
		t.Fatalf("items: %+v", items)
	}
	it := items[0]
	if !receipts.ValidLabel(it.Label) || it.Recipient != "alice" || it.State != certified.StateNotified {
		t.Fatalf("item: %+v", it)
	}
	// The sender gets r with the COP, to check H(L,r,M) against M.
	salt, err := receipts.ParseSalt(it.Salt)
	if err != nil {
		t.Fatalf("the submit answer carries no salt: %v", err)
	}
	if want := receipts.FormatHash(receipts.SaltedItemHash(it.Label, salt, []byte(message))); it.Hash != want {
		t.Fatalf("hash %s, want H(L,r,M) %s", it.Hash, want)
	}
	if d := time.Until(it.Deadline); d < 47*time.Hour || d > 49*time.Hour {
		t.Fatalf("deadline %s", it.Deadline)
	}
	// The COP is the SubmissionAcceptance record, signed by the gateway.
	cop, err := evidence.OpenRecord(it.COP, e.gatewayPub())
	if err != nil {
		t.Fatal(err)
	}
	if cop.Type != evidence.SubmissionAcceptance || cop.Label != it.Label || cop.Data.Recipient != "alice" ||
		cop.Data.Sender != "clerk@court.example" || !cop.Data.Deadline.Equal(it.Deadline) {
		t.Fatalf("COP: %+v", cop)
	}

	var view api.ItemView
	r := e.do("GET", "/v1/items/"+it.Label, e.acme, nil)
	if r.status != http.StatusOK {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	r.decode(t, &view)
	if view.State != certified.StateNotified || view.Submitter != "acme" || view.Reveal != "none" ||
		view.OnExpiry != "deemed-delivery" || len(view.History) != 2 ||
		view.History[0].Type != evidence.SubmissionAcceptance || view.History[1].Type != evidence.ConsignmentNotification ||
		view.History[0].JWS != it.COP {
		t.Fatalf("item view: %s", r.body)
	}
	if view.History[1].LeafIndex != view.History[0].LeafIndex+1 ||
		!bytes.Equal(view.History[0].LeafHash, evidence.LeafHash(it.COP)) {
		t.Fatalf("history leaves: %+v", view.History)
	}

	b := e.bundle(e.acme, it.Label)
	v, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: e.gatewayPub(), Message: strings.NewReader(message), Salt: &salt})
	if err != nil {
		t.Fatal(err)
	}
	if view.Salt != it.Salt {
		t.Fatalf("item view salt %q, submitted %q", view.Salt, it.Salt)
	}
	if !v.MessageChecked || !v.GatewayKeyPinned || v.State != evidence.StateNotified || len(v.Events) != 2 {
		t.Fatalf("verdict: %+v", v)
	}
	// An operator may read it too.
	if r := e.do("GET", "/v1/items/"+it.Label, e.operator, nil); r.status != http.StatusOK {
		t.Fatalf("operator get: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/items/"+it.Label+"/evidence", e.operator, nil); r.status != http.StatusOK {
		t.Fatalf("operator evidence: %d %s", r.status, r.body)
	}
}

func TestSubmitSeveralRecipientsBase64(t *testing.T) {
	e := newEnv(t, 0)
	raw := []byte("From: a@example.net\r\nSubject: bytes\r\n\r\nnot UTF-8: \xff\xfe\r\n")
	items := e.submit(e.acme, map[string]any{
		"message_base64": base64.StdEncoding.EncodeToString(raw),
		// alice twice, under two spellings: one item.
		"recipients": []string{"alice", "bob@example.org", "alice@example.org"},
		"sender":     "Notices <notices@example.net>",
		"alternates": []string{"bob"},
	})
	if len(items) != 2 || items[0].Recipient != "alice" || items[1].Recipient != "bob" || items[0].Label == items[1].Label {
		t.Fatalf("items: %+v", items)
	}
	for _, it := range items {
		b := e.bundle(e.acme, it.Label)
		salt, err := receipts.ParseSalt(it.Salt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: e.gatewayPub(), Message: bytes.NewReader(raw), Salt: &salt}); err != nil {
			t.Fatalf("%s: %v", it.Label, err)
		}
		cop, err := evidence.OpenRecord(it.COP, e.gatewayPub())
		if err != nil || cop.Data.Sender != "notices@example.net" {
			t.Fatalf("COP sender: %+v %v", cop.Data, err)
		}
		held, err := e.svc.Item(it.Label)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.store.Raw(held.Blob)
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("held M: %q %v", got, err)
		}
	}
}

func TestAuthAndIsolation(t *testing.T) {
	e := newEnv(t, 0)
	it := e.submit(e.acme, map[string]any{"message": message, "recipients": []string{"alice"}})[0]
	body := mustJSON(t, map[string]any{"message": message, "recipients": []string{"alice"}})

	r := e.do("POST", "/v1/items", "", body)
	if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %v", r.status, r.header)
	}
	r.errorText(t)
	r = e.do("POST", "/v1/items", "cmk_"+strings.Repeat("A", 43), body)
	if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("bad token: %d %v", r.status, r.header)
	}
	r = e.do("GET", "/v1/items/"+it.Label, "", nil, "Authorization", "Basic YWxpY2U6YWxpY2UtcHc=")
	if r.status != http.StatusUnauthorized {
		t.Fatalf("basic auth for a sender endpoint: %d", r.status)
	}
	for _, path := range []string{"/v1/items/" + it.Label, "/v1/items/" + it.Label + "/evidence"} {
		if r := e.do("GET", path, "", nil); r.status != http.StatusUnauthorized {
			t.Fatalf("%s without a token: %d", path, r.status)
		}
		// Another sender sees the same 404 as for a label that does not
		// exist.
		r := e.do("GET", path, e.other, nil)
		if r.status != http.StatusNotFound || r.errorText(t) != "no such item" {
			t.Fatalf("%s for another sender: %d %s", path, r.status, r.body)
		}
	}
	for _, label := range []string{"cm-aaaaaaaaaaaaaaaaaaaaaaaaaa", "nonsense", "cm-" + strings.Repeat("A", 26)} {
		if r := e.do("GET", "/v1/items/"+label, e.operator, nil); r.status != http.StatusNotFound {
			t.Fatalf("%s: %d", label, r.status)
		}
	}
	// A revoked token no longer works.
	if err := e.store.Update(func(tx *mailbox.Tx) error { return api.DeleteToken(tx, "acme") }); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", "/v1/items/"+it.Label, e.acme, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", r.status)
	}
	// An item posted over LMTP (no submitter) is for operators only.
	var lmtp *certified.Item
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		var err error
		lmtp, err = e.svc.Post(tx, certified.PostRequest{Raw: []byte(message), Recipient: "bob"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if r := e.do("GET", "/v1/items/"+lmtp.Label, e.other, nil); r.status != http.StatusNotFound {
		t.Fatalf("LMTP item for a sender: %d", r.status)
	}
	if r := e.do("GET", "/v1/items/"+lmtp.Label, e.operator, nil); r.status != http.StatusOK {
		t.Fatalf("LMTP item for the operator: %d", r.status)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, 2000)
	ok := func(extra map[string]any) []byte {
		m := map[string]any{"message": message, "recipients": []string{"alice"}}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return mustJSON(t, m)
	}
	big := "Subject: big\r\n\r\n" + strings.Repeat("x", 2000)
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		want   string
		hdr    []string
	}{
		{"not JSON", []byte("{"), 400, "decoding the request", nil},
		{"unknown field", ok(map[string]any{"deadlne": "1h"}), 400, `unknown field "deadlne"`, nil},
		{"trailing data", append(ok(nil), []byte(" {}")...), 400, "data after", nil},
		{"both forms", ok(map[string]any{"message_base64": "eA=="}), 400, "not both", nil},
		{"no message", ok(map[string]any{"message": nil}), 400, "no message", nil},
		{"empty message", ok(map[string]any{"message": ""}), 400, "empty", nil},
		{"bad base64", ok(map[string]any{"message": nil, "message_base64": "!!"}), 400, "message_base64", nil},
		{"no recipients", ok(map[string]any{"recipients": []string{}}), 400, "no recipients", nil},
		{"unknown recipient", ok(map[string]any{"recipients": []string{"carol"}}), 400, `recipient "carol"`, nil},
		{"foreign domain", ok(map[string]any{"recipients": []string{"alice@elsewhere.net"}}), 400, "alice@elsewhere.net", nil},
		{"display name recipient", ok(map[string]any{"recipients": []string{"Alice <alice@example.org>"}}), 400, "bare address", nil},
		{"bad deadline", ok(map[string]any{"deadline": "soon"}), 400, "deadline", nil},
		{"past deadline", ok(map[string]any{"deadline": "2001-01-01T00:00:00Z"}), 400, "in the past", nil},
		{"far deadline", ok(map[string]any{"deadline": "9000h"}), 400, "more than a year", nil},
		{"bad on_expiry", ok(map[string]any{"on_expiry": "shrug"}), 400, "on_expiry", nil},
		{"bad reveal", ok(map[string]any{"reveal": "all"}), 400, "reveal", nil},
		{"bad alternate", ok(map[string]any{"alternates": []string{"a b"}}), 400, "alternate", nil},
		{"bad sender", ok(map[string]any{"sender": "not an address"}), 400, "sender", nil},
		{"not a message", ok(map[string]any{"message": "just text with no header"}), 400, "RFC 5322", nil},
		{"unclear Certified-Delivery", ok(map[string]any{"message": "Subject: x\r\nCertified-Delivery : deadline=1h\r\n\r\nbody\r\n"}), 400,
			"unclear certification request: line 2: whitespace between the field name", nil},
		{"Certified-Delivery above a line without colon", ok(map[string]any{"message": "Certified-Delivery: deadline=1h\r\nno colon\r\n\r\nbody\r\n"}), 400,
			"line 2: \"no colon\" is not a header field", nil},
		{"invalid UTF-8", []byte("{\"message\":\"Subject: x\r\n\r\n\xff\",\"recipients\":[\"alice\"]}"), 400, "UTF-8", nil},
		{"form post", ok(nil), 415, "application/json", []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"message too large", ok(map[string]any{"message": big}), 413, "at most 2000", nil},
		{"base64 too large", ok(map[string]any{"message": nil, "message_base64": base64.StdEncoding.EncodeToString([]byte(big))}), 413, "message too large", nil},
		{"request too large", ok(map[string]any{"message": strings.Repeat("y", 2*2000+1<<20)}), 413, "larger than", nil},
	} {
		r := e.do("POST", "/v1/items", e.acme, c.body, c.hdr...)
		if r.status != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, r.status, c.status, r.body)
			continue
		}
		if msg := r.errorText(t); !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, msg, c.want)
		}
	}
	// Nothing of the refused requests was posted.
	n := 0
	if err := e.store.View(func(tx *mailbox.Tx) error {
		return certified.ListItems(tx, func(*certified.Item) error { n++; return nil })
	}); err != nil || n != 0 {
		t.Fatalf("%d items after refused requests (%v)", n, err)
	}

	for _, c := range []struct{ method, path, token string }{
		{"GET", "/v1/nothing", ""},
		{"GET", "/v1/items/x/y/z", e.acme},
	} {
		if r := e.do(c.method, c.path, c.token, nil); r.status != http.StatusNotFound {
			t.Errorf("%s %s: %d", c.method, c.path, r.status)
		} else {
			r.errorText(t)
		}
	}
	r := e.do("DELETE", "/v1/keys", "", nil)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
		t.Fatalf("DELETE /v1/keys: %d %v", r.status, r.header)
	}
	r.errorText(t)
	if r := e.do("GET", "/v1/items", e.acme, nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Fatalf("GET /v1/items: %d %v", r.status, r.header)
	}
	for _, q := range []string{"proof/inclusion", "proof/inclusion?index=x", "proof/inclusion?index=5&size=3",
		"proof/inclusion?index=0&size=99", "proof/consistency", "proof/consistency?first=3&second=1",
		"proof/consistency?first=0&second=99", "leaves?start=5&end=1", "leaves?end=99", "checkpoint?size=77", "checkpoint?size=-1"} {
		r := e.do("GET", "/v1/log/"+q, "", nil)
		if r.status != http.StatusBadRequest && r.status != http.StatusNotFound {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
		r.errorText(t)
	}
}

// TestLogEndpoints checks the public log: checkpoints verify with the
// published note key, inclusion proofs into them, leaf hashes rebuild
// their root, and a checkpoint taken after more traffic is consistent with
// an earlier one.
func TestLogEndpoints(t *testing.T) {
	e := newEnv(t, 0)
	var keys api.KeysResponse
	r := e.do("GET", "/v1/keys", "", nil)
	r.decode(t, &keys)
	if keys.Gateway != gateway || len(keys.Keys) != 1 || keys.LogOrigin != gateway+"/certmail/evidence" {
		t.Fatalf("keys: %s", r.body)
	}
	pub, err := receipts.ParsePublicKeyPEM([]byte(keys.Keys[0].PEM))
	if err != nil || !pub.Equal(e.gatewayPub()) {
		t.Fatalf("PEM key: %v", err)
	}
	if jwkPub, err := keys.Keys[0].JWK.PublicKey(); err != nil || !jwkPub.Equal(pub) || keys.Keys[0].Kid != keys.Keys[0].JWK.Kid {
		t.Fatalf("JWK: %v", err)
	}
	if vkey, _ := evidence.VerifierKey(keys.LogOrigin, pub); vkey != keys.NoteVerifierKey {
		t.Fatalf("note verifier key %q, want %q", keys.NoteVerifierKey, vkey)
	}

	checkpoint := func() ([]byte, evidence.TreeHead) {
		t.Helper()
		r := e.do("GET", "/v1/log/checkpoint", "", nil)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Fatalf("checkpoint: %d %s", r.status, r.body)
		}
		head, err := evidence.ParseCheckpoint(r.body, keys.NoteVerifierKey)
		if err != nil {
			t.Fatal(err)
		}
		return r.body, head
	}
	_, empty := checkpoint()
	if empty.Size != 0 {
		t.Fatalf("empty log: size %d", empty.Size)
	}
	first := e.submit(e.acme, map[string]any{"message": message, "recipients": []string{"alice", "bob"}})
	cp1, head1 := checkpoint()
	if head1.Size != 4 {
		t.Fatalf("size %d after two items", head1.Size)
	}
	// Asking again signs nothing new.
	if again, _ := checkpoint(); !bytes.Equal(again, cp1) {
		t.Fatal("a second checkpoint of the same size differs")
	}
	e.submit(e.other, map[string]any{"message": message, "recipients": []string{"bob"}})
	e.submit(e.acme, map[string]any{"message": message, "recipients": []string{"alice"}})
	_, head2 := checkpoint()
	if head2.Size != 8 {
		t.Fatalf("size %d after four items", head2.Size)
	}
	// The older checkpoint is still served by size.
	if r := e.do("GET", fmt.Sprintf("/v1/log/checkpoint?size=%d", head1.Size), "", nil); !bytes.Equal(r.body, cp1) {
		t.Fatalf("checkpoint by size: %s", r.body)
	}

	var cons api.ConsistencyResponse
	e.do("GET", fmt.Sprintf("/v1/log/proof/consistency?first=%d&second=%d", head1.Size, head2.Size), "", nil).decode(t, &cons)
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, head1.Size, head2.Size, cons.Proof, head1.Root, head2.Root); err != nil {
		t.Fatalf("consistency %d→%d: %v", head1.Size, head2.Size, err)
	}
	// Without second: up to the newest checkpoint, which comes along.
	cons = api.ConsistencyResponse{}
	e.do("GET", "/v1/log/proof/consistency?first=3", "", nil).decode(t, &cons)
	h, err := evidence.ParseCheckpoint([]byte(cons.Checkpoint), keys.NoteVerifierKey)
	if err != nil || h.Size != 8 || cons.Second != 8 {
		t.Fatalf("consistency default second: %+v %v", cons, err)
	}
	root3, err := rootOf(t, e, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 3, 8, cons.Proof, root3, h.Root); err != nil {
		t.Fatalf("consistency 3→8: %v", err)
	}

	// Every record of the first item is in both trees.
	var view api.ItemView
	e.do("GET", "/v1/items/"+first[0].Label, e.acme, nil).decode(t, &view)
	for _, rec := range view.History {
		for _, head := range []evidence.TreeHead{head1, head2} {
			var inc api.InclusionResponse
			e.do("GET", fmt.Sprintf("/v1/log/proof/inclusion?index=%d&size=%d", rec.LeafIndex, head.Size), "", nil).decode(t, &inc)
			if !bytes.Equal(inc.LeafHash, rec.LeafHash) {
				t.Fatalf("leaf %d: hash differs from the item's", rec.LeafIndex)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, rec.LeafIndex, head.Size, evidence.LeafHash(rec.JWS), inc.Proof, head.Root); err != nil {
				t.Fatalf("leaf %d in %d: %v", rec.LeafIndex, head.Size, err)
			}
		}
	}
	var inc api.InclusionResponse
	e.do("GET", "/v1/log/proof/inclusion?index=7", "", nil).decode(t, &inc)
	if inc.Size != 8 || inc.Checkpoint == "" {
		t.Fatalf("inclusion default size: %+v", inc)
	}

	// The leaf hashes rebuild the checkpoint's root.
	if root, err := rootOf(t, e, head2.Size); err != nil || !bytes.Equal(root, head2.Root) {
		t.Fatalf("root from leaf hashes: %v", err)
	}
	var leaves api.LeavesResponse
	e.do("GET", "/v1/log/leaves?start=2&end=5", "", nil).decode(t, &leaves)
	if leaves.Start != 2 || leaves.End != 5 || len(leaves.LeafHashes) != 3 {
		t.Fatalf("leaves: %+v", leaves)
	}
}

// rootOf computes the RFC 6962 root of the first size leaves from the
// public leaf hashes, as an auditor would.
func rootOf(t *testing.T, e *env, size uint64) ([]byte, error) {
	t.Helper()
	var leaves api.LeavesResponse
	e.do("GET", fmt.Sprintf("/v1/log/leaves?start=0&end=%d", size), "", nil).decode(t, &leaves)
	var hash func(l [][]byte) []byte
	hash = func(l [][]byte) []byte {
		if len(l) == 1 {
			return l[0]
		}
		k := 1
		for k*2 < len(l) {
			k *= 2
		}
		return rfc6962.DefaultHasher.HashChildren(hash(l[:k]), hash(l[k:]))
	}
	if uint64(len(leaves.LeafHashes)) != size {
		return nil, fmt.Errorf("%d leaf hashes, want %d", len(leaves.LeafHashes), size)
	}
	return hash(leaves.LeafHashes), nil
}

// TestCODOverHTTP: a recipient with a key of their own hands in a COD
// over HTTP; M is released and the bundle shows COD and ROD.
func TestCODOverHTTP(t *testing.T) {
	e := newEnv(t, 0)
	it := e.submit(e.acme, map[string]any{"message": message, "recipients": []string{"alice"}})[0]
	other := e.submit(e.acme, map[string]any{"message": message, "recipients": []string{"alice"}})[0]
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		_, err := certified.RegisterKey(tx, "alice", priv.Public().(ed25519.PublicKey))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	hash, _ := receipts.ParseHash(it.Hash)
	cod, err := receipts.SignCOD(priv, receipts.NewCODRequest(gateway, it.Label, hash, "alice", it.Deadline).
		Claims(receipts.DecisionCOD, receipts.CustodyRecipientHeld, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	post := func(label, user, pass string, body []byte, ct string) response {
		t.Helper()
		req, _ := http.NewRequest("POST", e.srv.URL+"/v1/items/"+label+"/cod", bytes.NewReader(body))
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		req.Header.Set("Content-Type", ct)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{resp.StatusCode, resp.Header, b}
	}
	if r := post(it.Label, "", "", []byte(cod), "application/jose"); r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("no credentials: %d %v", r.status, r.header)
	}
	if r := post(it.Label, "alice", "wrong", []byte(cod), "application/jose"); r.status != 401 {
		t.Fatalf("wrong password: %d", r.status)
	}
	if r := post(it.Label, "bob", "bob-pw", []byte(cod), "application/jose"); r.status != 404 {
		t.Fatalf("not the recipient: %d %s", r.status, r.body)
	}
	if r := post(other.Label, "alice", "alice-pw", []byte(cod), "application/jose"); r.status != 400 || !strings.Contains(r.errorText(t), "is for item") {
		t.Fatalf("COD of another item: %d %s", r.status, r.body)
	}
	if r := post(it.Label, "alice", "alice-pw", []byte("eyJhbGciOi.garbage"), "application/jose"); r.status != 400 {
		t.Fatalf("garbage: %d %s", r.status, r.body)
	}
	r := post(it.Label, "alice", "alice-pw", mustJSON(t, map[string]string{"cod": cod}), "application/json")
	if r.status != 200 {
		t.Fatalf("COD: %d %s", r.status, r.body)
	}
	var res api.CODResponse
	r.decode(t, &res)
	if res.State != certified.StateReleased {
		t.Fatalf("state %s", res.State)
	}
	if r := post(it.Label, "alice", "alice-pw", []byte(cod+"\n"), "application/jose"); r.status != 422 || !strings.Contains(r.errorText(t), "already") {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	b := e.bundle(e.acme, it.Label)
	v, err := evidence.Verify(b, evidence.VerifyOptions{GatewayKey: e.gatewayPub(), Message: strings.NewReader(message)})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != evidence.StateReleased || len(v.Events) != 4 || v.Salt != it.Salt {
		t.Fatalf("verdict: %s", v)
	}

	// The recipient, to whom M was released with r, fetches the bundle
	// with the account password and checks M against the H(L,r,M) signed.
	// Before release (other), or as anyone else, it is 404.
	get := func(label, user, pass string) response {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/items/"+label+"/evidence", nil)
		req.SetBasicAuth(user, pass)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return response{resp.StatusCode, resp.Header, body}
	}
	r = get(it.Label, "alice", "alice-pw")
	if r.status != 200 {
		t.Fatalf("recipient's bundle: %d %s", r.status, r.body)
	}
	rb, err := evidence.ParseBundle(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := evidence.Verify(rb, evidence.VerifyOptions{GatewayKey: e.gatewayPub(), Message: strings.NewReader(message)}); err != nil || !v.MessageChecked {
		t.Fatalf("the recipient cannot check M: %v", err)
	}
	for _, c := range []struct{ label, user, pass string }{
		{other.Label, "alice", "alice-pw"}, // not released: no bundle, no salt
		{it.Label, "bob", "bob-pw"},        // released, but not to bob
	} {
		if r := get(c.label, c.user, c.pass); r.status != 404 || bytes.Contains(r.body, []byte("salt")) {
			t.Fatalf("%s as %s: %d %s", c.label, c.user, r.status, r.body)
		}
	}
	if r := get(it.Label, "alice", "wrong"); r.status != 401 {
		t.Fatalf("wrong password: %d", r.status)
	}
}

// TestOpenAPI checks that the document is JSON, is OpenAPI 3.1, and names
// exactly the routes the server serves, with their methods.
func TestOpenAPI(t *testing.T) {
	e := newEnv(t, 0)
	r := e.do("GET", "/v1/openapi.json", "", nil)
	if r.status != 200 || !bytes.Equal(r.body, api.OpenAPI) {
		t.Fatalf("served document differs: %d", r.status)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	described := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			described[strings.ToUpper(method)+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, route := range e.api.Routes() {
		served[route] = true
		if !described[route] {
			t.Errorf("route %s is not in openapi.json", route)
		}
	}
	for route := range described {
		if !served[route] {
			t.Errorf("openapi.json describes %s, which is not served", route)
		}
	}
	// Every $ref resolves.
	var all map[string]any
	json.Unmarshal(api.OpenAPI, &all)
	schemas := all["components"].(map[string]any)["schemas"].(map[string]any)
	for _, ref := range refs(all) {
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		if !ok || schemas[name] == nil {
			t.Errorf("dangling $ref %s", ref)
		}
	}
}

func refs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				out = append(out, s)
			}
			out = append(out, refs(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, refs(x)...)
		}
	}
	return out
}

// Issue 11 item 11: an item's notices are mailed to its sender only when
// the token owns that address (its configured senders); the sender field
// and From are whatever the client wrote. Otherwise the evidence is there
// by label and nothing is mailed.
func TestNoticesOnlyToTokenSenders(t *testing.T) {
	e := newEnv(t, 0)
	if err := e.store.Update(func(tx *mailbox.Tx) error {
		return api.SetTokenSenders(tx, "acme", []string{"owner@acme.example", "desk@acme.example"})
	}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"Owner <owner@acme.example>"}, {"not an address"}, {""}} {
		if err := e.store.Update(func(tx *mailbox.Tx) error { return api.SetTokenSenders(tx, "acme", bad) }); err == nil {
			t.Errorf("SetTokenSenders(%q) accepted", bad)
		}
	}
	if err := e.store.Update(func(tx *mailbox.Tx) error { return api.SetTokenSenders(tx, "nobody", nil) }); !errors.Is(err, api.ErrNoToken) {
		t.Errorf("SetTokenSenders on no token: %v", err)
	}
	msg := func(from string) string { return "From: " + from + "\r\nSubject: s\r\n\r\nbody\r\n" }
	type view struct {
		Label         string `json:"label"`
		NoticesMailed bool   `json:"notices_mailed"`
	}
	submit := func(tok string, req map[string]any) view {
		t.Helper()
		r := e.do("POST", "/v1/items", tok, mustJSON(t, req))
		var out struct{ Items []view }
		if r.status != http.StatusCreated || json.Unmarshal(r.body, &out) != nil || len(out.Items) != 1 {
			t.Fatalf("submit: %d %s", r.status, r.body)
		}
		return out.Items[0]
	}
	for _, c := range []struct {
		name   string
		tok    string
		req    map[string]any
		mailed string // "" : nothing mailed
	}{
		{"the token's sender", e.acme, map[string]any{"message": msg("x@y.example"), "recipients": []string{"alice"}, "sender": "DESK@acme.example"}, "desk@acme.example"},
		{"From, one of the token's senders", e.acme, map[string]any{"message": msg("Owner <owner@acme.example>"), "recipients": []string{"alice"}}, "owner@acme.example"},
		{"a sender the token does not own", e.acme, map[string]any{"message": msg("owner@acme.example"), "recipients": []string{"alice"}, "sender": "victim@forged.example"}, ""},
		{"From the token does not own", e.acme, map[string]any{"message": msg("victim@forged.example"), "recipients": []string{"alice"}}, ""},
		{"a token without senders", e.other, map[string]any{"message": msg("owner@acme.example"), "recipients": []string{"alice"}}, ""},
		{"an operator token without senders", e.operator, map[string]any{"message": msg("owner@acme.example"), "recipients": []string{"alice"}}, ""},
	} {
		e.notices.mu.Lock()
		e.notices.sent = nil
		e.notices.mu.Unlock()
		it := submit(c.tok, c.req)
		got := e.notices.mailedTo()
		if c.mailed == "" {
			if it.NoticesMailed || len(got) != 0 {
				t.Errorf("%s: notices_mailed %v, mailed to %v; want nothing", c.name, it.NoticesMailed, got)
			}
		} else if !it.NoticesMailed || len(got) != 1 || !strings.EqualFold(got[0], c.mailed) {
			t.Errorf("%s: notices_mailed %v, mailed to %v; want %s", c.name, it.NoticesMailed, got, c.mailed)
		}
		// The evidence is there either way.
		if r := e.do("GET", "/v1/items/"+it.Label+"/evidence", c.tok, nil); r.status != http.StatusOK {
			t.Errorf("%s: evidence: %d %s", c.name, r.status, r.body)
		}
	}
}
