package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"time"

	"certmail/certified"
	"certmail/delivery"
	"certmail/mailbox"
	"certmail/receipts"
	"certmail/receipts/evidence"
)

// SubmitResponse is the answer to POST /v1/items: one item per recipient.
type SubmitResponse struct {
	Items []SubmittedItem `json:"items"`
}

// SubmittedItem is one posted item and its certificate of posting.
type SubmittedItem struct {
	Label     string `json:"label"`
	Recipient string `json:"recipient"`
	Hash      string `json:"hash"` // the commitment H(L,r,M)
	// Salt is r of H(L,r,M): the sender needs it to check the COP against
	// M; the recipient gets it only with M.
	Salt     string    `json:"salt,omitempty"`
	Deadline time.Time `json:"deadline"`
	State    string    `json:"state"`
	// COP is the SubmissionAcceptance record: a compact JWS signed by
	// the gateway.
	COP       string `json:"cop"`
	LeafIndex uint64 `json:"leaf_index"`
	URL       string `json:"url"`
	// NoticesMailed: the sender gets notices by mail (it is one of the
	// token's configured senders).
	NoticesMailed bool `json:"notices_mailed"`
}

// ItemView is an item's state and history (GET /v1/items/{label}).
type ItemView struct {
	Label      string       `json:"label"`
	Hash       string       `json:"hash"`
	Salt       string       `json:"salt,omitempty"` // r of H(L,r,M); none for items posted before salting
	State      string       `json:"state"`
	Recipient  string       `json:"recipient"`
	Holders    []string     `json:"holders"`
	Sender     string       `json:"sender,omitempty"`
	SenderAuth string       `json:"sender_auth,omitempty"`
	Submitter  string       `json:"submitter,omitempty"`
	Deadline   time.Time    `json:"deadline"`
	OnExpiry   string       `json:"on_expiry"`
	Reveal     string       `json:"reveal"`
	Alternates []string     `json:"alternates,omitempty"`
	Posted     time.Time    `json:"posted"`
	Decided    time.Time    `json:"decided,omitzero"`
	Signer     string       `json:"signer,omitempty"`
	Custody    string       `json:"custody,omitempty"`
	History    []RecordView `json:"history"`
}

// RecordView is one evidence record of an item.
type RecordView struct {
	Seq       uint64             `json:"seq"`
	Type      evidence.EventType `json:"type"`
	Time      time.Time          `json:"time"`
	LeafIndex uint64             `json:"leaf_index"`
	LeafHash  []byte             `json:"leaf_hash"` // RFC 6962, base64
	Digest    string             `json:"digest"`    // what the next record's prev names
	JWS       string             `json:"jws"`
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) error {
	tok, err := s.sender(r)
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return errorf(http.StatusUnsupportedMediaType, "send the item as application/json, not %q", ct)
		}
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	sub, err := DecodeSubmit(body, s.opts.MaxMessageBytes)
	if errors.Is(err, ErrTooLarge) {
		return errorf(http.StatusRequestEntityTooLarge, "%v", err)
	}
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	spec, err := certified.SpecFromFields(sub.Spec, s.opts.Now())
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	var accounts []string
	for _, rcpt := range sub.Recipients {
		acct, err := s.resolve(rcpt)
		if err != nil {
			return err
		}
		// One item per account, however many ways it was named.
		if !slices.Contains(accounts, acct) {
			accounts = append(accounts, acct)
		}
	}
	sender := sub.Sender
	if sender == "" {
		sender = fromAddress(sub.Raw)
	}
	// Notices are mailed only to an address the token is known to own
	// (certified.Item.MailsNotices): the sender field and From are
	// whatever the client wrote.
	senderAuth := ""
	if tok.Vouches(sender) {
		senderAuth = "api-token:" + tok.Name
	}

	var out SubmitResponse
	err = s.store.Update(func(tx *mailbox.Tx) error {
		out.Items = out.Items[:0] // a retried transaction starts over
		// M is stored once and shared by every recipient's item; this
		// transaction's own reference goes at the end.
		blob, err := tx.PutBlob(sub.Raw)
		if err != nil {
			return err
		}
		for _, acct := range accounts {
			it, err := s.svc.Post(tx, certified.PostRequest{Raw: sub.Raw, Blob: blob, Sender: sender, SenderAuth: senderAuth,
				Recipient: acct, Spec: spec, Submitter: tok.Name})
			if err != nil {
				return fmt.Errorf("posting for %s: %w", acct, err)
			}
			entries, err := evidence.Records(tx, it.Label)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				return fmt.Errorf("item %s has no certificate of posting", it.Label)
			}
			out.Items = append(out.Items, SubmittedItem{Label: it.Label, Recipient: it.Recipient, Hash: it.Hash, Salt: it.Salt,
				Deadline: it.Deadline, State: it.State, COP: entries[0].JWS, LeafIndex: entries[0].Index,
				URL: "/v1/items/" + it.Label, NoticesMailed: it.MailsNotices()})
		}
		return tx.UnrefBlob(blob)
	})
	if err != nil {
		return err
	}
	// The COP is a promise: it goes out only once the item is durable.
	if err := s.store.Sync(); err != nil {
		return fmt.Errorf("syncing the store: %w", err)
	}
	for _, it := range out.Items {
		s.lg.Info("certified item submitted", "label", it.Label, "recipient", it.Recipient, "token", tok.Name)
	}
	if len(out.Items) == 1 {
		w.Header().Set("Location", out.Items[0].URL)
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// resolve maps a recipient to its account; unknown recipients are the
// client's error.
func (s *Server) resolve(rcpt string) (string, error) {
	if s.opts.Resolve == nil {
		acct, err := mailbox.NormalizeAccount(rcpt)
		if err != nil {
			return "", errorf(http.StatusBadRequest, "recipient %q: no such account", rcpt)
		}
		ok, err := s.store.AccountExists(acct)
		if err != nil {
			return "", fmt.Errorf("looking up %s: %w", acct, err)
		}
		if !ok {
			return "", errorf(http.StatusBadRequest, "recipient %q: no such account", rcpt)
		}
		return acct, nil
	}
	acct, err := s.opts.Resolve(rcpt)
	switch {
	case err == nil:
		return acct, nil
	case errors.Is(err, delivery.ErrTemporary):
		return "", errorf(http.StatusServiceUnavailable, "recipient %q: %v; try again", rcpt, err)
	case errors.Is(err, delivery.ErrNoUser):
		return "", errorf(http.StatusBadRequest, "recipient %q: no such account", rcpt)
	case errors.Is(err, delivery.ErrDomain):
		return "", errorf(http.StatusBadRequest, "recipient %q: the domain is not served here", rcpt)
	default:
		return "", errorf(http.StatusBadRequest, "recipient %q: %v", rcpt, err)
	}
}

func (s *Server) getItem(w http.ResponseWriter, r *http.Request) error {
	tok, err := s.sender(r)
	if err != nil {
		return err
	}
	it, err := s.visibleItem(tok, r.PathValue("label"))
	if err != nil {
		return err
	}
	v := ItemView{Label: it.Label, Hash: it.Hash, Salt: it.Salt, State: it.State, Recipient: it.Recipient, Holders: it.Holders,
		Sender: it.Sender, SenderAuth: it.SenderAuth, Submitter: it.Submitter, Deadline: it.Deadline, OnExpiry: it.OnExpiry, Reveal: it.Reveal,
		Alternates: it.Alternates, Posted: it.Posted, Decided: it.Decided, Signer: it.Signer, Custody: it.Custody,
		History: []RecordView{}}
	err = s.store.View(func(tx *mailbox.Tx) error {
		entries, err := evidence.Records(tx, it.Label)
		if err != nil {
			return err
		}
		for _, e := range entries {
			rec, err := e.Record()
			if err != nil {
				return err
			}
			v.History = append(v.History, RecordView{Seq: rec.Seq, Type: rec.Type, Time: rec.Time.UTC(),
				LeafIndex: e.Index, LeafHash: evidence.LeafHash(e.JWS), Digest: evidence.RecordDigest(e.JWS), JWS: e.JWS})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the history of %s: %w", it.Label, err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) getEvidence(w http.ResponseWriter, r *http.Request) error {
	var it *certified.Item
	var err error
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Basic") {
		it, err = s.releasedItem(r)
	} else {
		var tok *TokenInfo
		if tok, err = s.sender(r); err != nil {
			return err
		}
		it, err = s.visibleItem(tok, r.PathValue("label"))
	}
	if err != nil {
		return err
	}
	b, err := s.svc.Bundle(it.Label)
	if err != nil {
		return fmt.Errorf("building the bundle of %s: %w", it.Label, err)
	}
	out, err := b.Marshal()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", it.Label+".evidence.json"))
	w.Write(out)
	return nil
}

// releasedItem authenticates a recipient (HTTP Basic, the account
// password) and returns the item labelled in the path if its message was
// released to that account: the bundle then releases the salt r with
// which the recipient checks M against the H(L,r,M) they signed
// (docs/verify.md). Before release, or to anyone else, it is the same 404
// as an unknown label, so that a holder learns nothing (the sender, the
// salt) before deciding.
func (s *Server) releasedItem(r *http.Request) (*certified.Item, error) {
	acct, err := s.recipient(r)
	if err != nil {
		return nil, err
	}
	notFound := errorf(http.StatusNotFound, "no such item")
	label := r.PathValue("label")
	if !receipts.ValidLabel(label) {
		return nil, notFound
	}
	it, err := s.svc.Item(label)
	if errors.Is(err, certified.ErrNoItem) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading item %s: %w", label, err)
	}
	if to, ok := it.ReleasedTo(); !ok || to != acct {
		return nil, notFound
	}
	return it, nil
}

// CODRequest is the JSON form of POST /v1/items/{label}/cod; the body
// may also be the bare compact JWS (as application/jose or text/plain).
type CODRequest struct {
	COD string `json:"cod"`
}

// CODResponse says how the item stands after a COD or refusal.
type CODResponse struct {
	Label string `json:"label"`
	State string `json:"state"`
}

// postCOD takes a COD or refusal that the recipient signed with a key of
// their own (CEM-ip: B signs (P, L, H(L,r,M)) without having seen M). The
// recipient authenticates with the account password.
func (s *Server) postCOD(w http.ResponseWriter, r *http.Request) error {
	acct, err := s.recipient(r)
	if err != nil {
		return err
	}
	label := r.PathValue("label")
	notFound := errorf(http.StatusNotFound, "no such item")
	if !receipts.ValidLabel(label) {
		return notFound
	}
	it, err := s.svc.Item(label)
	if errors.Is(err, certified.ErrNoItem) {
		return notFound
	}
	if err != nil {
		return fmt.Errorf("reading item %s: %w", label, err)
	}
	if !it.IsHolder(acct) {
		return notFound
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	// A compact JWS never starts with "{", so the body's form shows by
	// itself, whatever Content-Type a client sends.
	cod := string(bytes.TrimSpace(body))
	if strings.HasPrefix(cod, "{") {
		var req CODRequest
		if err := strictJSON(body, &req); err != nil {
			return errorf(http.StatusBadRequest, "decoding the request: %v", err)
		}
		cod = strings.TrimSpace(req.COD)
	}
	if cod == "" {
		return errorf(http.StatusBadRequest, "no COD in the request")
	}
	claims, _, err := receipts.ParseCOD(cod)
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	if claims.Label != label {
		return errorf(http.StatusBadRequest, "the COD is for item %s, not %s", claims.Label, label)
	}
	if err := s.svc.SubmitCOD(acct, cod); err != nil {
		if errors.Is(err, mailbox.ErrRefused) {
			return errorf(http.StatusUnprocessableEntity, "%v", err)
		}
		return err
	}
	if err := s.store.Sync(); err != nil {
		return fmt.Errorf("syncing the store: %w", err)
	}
	it, err = s.svc.Item(label)
	if err != nil {
		return fmt.Errorf("reading item %s: %w", label, err)
	}
	s.lg.Info("COD submitted over HTTP", "label", label, "account", acct, "state", it.State)
	writeJSON(w, http.StatusOK, CODResponse{Label: label, State: it.State})
	return nil
}

// readBody reads the (size-limited) request body; over the limit is 413.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "the request is larger than %d bytes", tooBig.Limit)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "reading the request: %v", err)
	}
	return body, nil
}

// strictJSON decodes exactly one JSON value with no unknown fields.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// fromAddress is M's From address, or "": where notices go when the
// submission names no sender, as for mail delivered without an envelope
// sender.
func fromAddress(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	addrs, err := msg.Header.AddressList("From")
	if err != nil || len(addrs) == 0 {
		return ""
	}
	return addrs[0].Address
}
