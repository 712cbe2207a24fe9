package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"certmail/authguard"
	"certmail/certified"
	"certmail/mailbox"
	"certmail/receipts"
)

// realm names the API in WWW-Authenticate challenges.
const realm = "certmail"

// sender authenticates the request's bearer token (RFC 6750). No token is
// a 401 with a bare challenge; a token that is not valid is a 401 with
// error="invalid_token", so a client can tell "log in" from "your token
// was revoked".
func (s *Server) sender(r *http.Request) (*TokenInfo, error) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return nil, &httpError{status: http.StatusUnauthorized, msg: "an API token is required: Authorization: Bearer <token> (certmail token add NAME)",
			header: http.Header{"Www-Authenticate": {fmt.Sprintf("Bearer realm=%q", realm)}}}
	}
	scheme, token, _ := strings.Cut(authz, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, &httpError{status: http.StatusUnauthorized, msg: "use Authorization: Bearer <token>",
			header: http.Header{"Www-Authenticate": {fmt.Sprintf("Bearer realm=%q", realm)}}}
	}
	var info *TokenInfo
	err := s.store.View(func(tx *mailbox.Tx) error {
		var err error
		info, err = LookupToken(tx, strings.TrimSpace(token))
		return err
	})
	if errors.Is(err, ErrNoToken) {
		return nil, &httpError{status: http.StatusUnauthorized, msg: "the API token is not valid",
			header: http.Header{"Www-Authenticate": {fmt.Sprintf("Bearer realm=%q, error=\"invalid_token\"", realm)}}}
	}
	if err != nil {
		return nil, fmt.Errorf("looking up the API token: %w", err)
	}
	return info, nil
}

// recipient authenticates a recipient by HTTP Basic auth (RFC 7617) with
// the account password, through the guard IMAP uses: failures here count
// there, and a locked account or address gets the same 401 whatever the
// password, before anything about the item is looked at.
func (s *Server) recipient(r *http.Request) (string, error) {
	challenge := http.Header{"Www-Authenticate": {fmt.Sprintf("Basic realm=%q, charset=\"UTF-8\"", realm)}}
	user, pass, ok := r.BasicAuth()
	if !ok {
		if r.Header.Get("Authorization") != "" {
			// Credentials that are not Basic auth (bad base64, no
			// colon) count as a failure, as a malformed AUTHENTICATE
			// does in IMAP.
			err := s.opts.Auth.Fail(r.Context(), authguard.Attempt{Proto: "http", Remote: r.RemoteAddr}, "malformed Authorization header")
			return "", &httpError{status: http.StatusUnauthorized, msg: err.Error(), header: challenge}
		}
		return "", &httpError{status: http.StatusUnauthorized, msg: "the recipient's account name and password are required (HTTP Basic auth)", header: challenge}
	}
	acct, err := s.opts.Auth.Authenticate(r.Context(), authguard.Attempt{Proto: "http", Remote: r.RemoteAddr, Name: user}, pass)
	if err != nil {
		return "", &httpError{status: http.StatusUnauthorized, msg: err.Error(), header: challenge}
	}
	// One line per login, as IMAP's (HTTP has no session: one per
	// authenticated request).
	s.lg.Info("login", "proto", "http", "user", acct, "remote", r.RemoteAddr, "tls", r.TLS != nil, "path", r.URL.Path)
	return acct, nil
}

// visibleItem returns the item labelled label if tok may read it: the
// submitting token or an operator. Anything else, including a label that
// is not one, is the same 404, so that a sender cannot probe for other
// senders' labels.
func (s *Server) visibleItem(tok *TokenInfo, label string) (*certified.Item, error) {
	notFound := errorf(http.StatusNotFound, "no such item")
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
	if !tok.Operator && (it.Submitter == "" || it.Submitter != tok.Name) {
		return nil, notFound
	}
	return it, nil
}
