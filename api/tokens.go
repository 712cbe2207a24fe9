package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"certmail/kv"

	"certmail/kv/keyspace"
)

// Token records, in the store's auxiliary key space:
//
//	api/token/<hex SHA-256 of the token>   TokenInfo (JSON)
//	api/tokenname/<name>                   the hex hash: names are unique
//
// Only the hash is kept: a copy of the store (a backup) does not hand out
// working tokens. A plain SHA-256 is enough because a token is 256 random
// bits, which no dictionary or brute force reaches; a slow password hash
// would only make every API request slow.
const (
	prefixToken     = keyspace.API + "token/"
	prefixTokenName = keyspace.API + "tokenname/"
)

// tokenPrefix marks certmail API tokens, so that a leaked one is easy to
// recognise (and to grep for in logs and repositories).
const tokenPrefix = "cmk_"

// tokenBytes is the entropy of a token.
const tokenBytes = 32

// maxTokenName bounds token names: they end up in every item a token
// submits.
const maxTokenName = 64

var (
	// ErrNoToken: no token has that name, or the token is not valid.
	ErrNoToken = errors.New("no such API token")
	// ErrTokenExists: a token of that name exists already.
	ErrTokenExists = errors.New("API token exists")
	// ErrBadTokenName: the name is not one a token may have.
	ErrBadTokenName = errors.New("bad API token name")
)

// TokenInfo is what the store keeps of a token.
type TokenInfo struct {
	// Name identifies the sender: items it submits carry it as their
	// Submitter, and only this name (or an operator) may read them.
	Name     string    `json:"name"`
	Operator bool      `json:"operator"`
	Created  time.Time `json:"created"`
	// Senders are the addresses the token's holder has shown to be theirs
	// (the operator says so when adding the token): an item submitted
	// with one of them as its sender gets its notices by mail; any other
	// sender address only names the sender in the evidence.
	Senders []string `json:"senders,omitempty"`
}

// Vouches reports whether the token's holder is known to own addr, one of
// its configured senders (compared without regard to case).
func (t *TokenInfo) Vouches(addr string) bool {
	for _, s := range t.Senders {
		if addr != "" && strings.EqualFold(s, addr) {
			return true
		}
	}
	return false
}

// SetTokenSenders sets the addresses the token named name may have notices
// mailed to (TokenInfo.Senders); each must be a bare address.
func SetTokenSenders(kv kv.Records, name string, senders []string) error {
	for _, a := range senders {
		if err := checkAddrField("sender", a, true); err != nil {
			return fmt.Errorf("token %q: %w", name, err)
		}
		if p, err := mail.ParseAddress(a); err != nil || p.Address != a {
			return fmt.Errorf("token %q: sender %q is not a bare address (user@domain)", name, a)
		}
	}
	h, found, err := kv.Get([]byte(prefixTokenName + name))
	if err != nil {
		return fmt.Errorf("token %q: %w", name, err)
	}
	if !found {
		return fmt.Errorf("token %q: %w", name, ErrNoToken)
	}
	info, err := tokenByHash(kv, string(h))
	if err != nil {
		return fmt.Errorf("token %q: %w", name, err)
	}
	info.Senders = senders
	b, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("token %q: %w", name, err)
	}
	if err := kv.Set([]byte(prefixToken+string(h)), b); err != nil {
		return fmt.Errorf("token %q: storing: %w", name, err)
	}
	return nil
}

// CheckTokenName says whether name may name a token: 1 to 64 characters
// of lower-case letters, digits and ".-_@", starting with a letter or a
// digit. Names are shown in logs and CLI output, so nothing that could
// break a line or a column.
func CheckTokenName(name string) error {
	if name == "" || len(name) > maxTokenName {
		return fmt.Errorf("%w: %q: want 1 to %d characters", ErrBadTokenName, name, maxTokenName)
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune(".-_@", r)) {
			return fmt.Errorf("%w: %q: use lower-case letters, digits and .-_@, starting with a letter or digit", ErrBadTokenName, name)
		}
	}
	return nil
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// AddToken makes a new token named name and returns it; the token itself
// is not stored and cannot be shown again. Run it in a write transaction.
func AddToken(kv kv.Records, name string, operator bool, now time.Time) (string, error) {
	if err := CheckTokenName(name); err != nil {
		return "", err
	}
	if _, found, err := kv.Get([]byte(prefixTokenName + name)); err != nil {
		return "", fmt.Errorf("token %q: %w", name, err)
	} else if found {
		return "", fmt.Errorf("token %q: %w (delete it first to replace it)", name, ErrTokenExists)
	}
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("token %q: random: %w", name, err)
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	info, err := json.Marshal(TokenInfo{Name: name, Operator: operator, Created: now.UTC()})
	if err != nil {
		return "", fmt.Errorf("token %q: %w", name, err)
	}
	h := tokenHash(token)
	if err := kv.Set([]byte(prefixToken+h), info); err != nil {
		return "", fmt.Errorf("token %q: storing: %w", name, err)
	}
	if err := kv.Set([]byte(prefixTokenName+name), []byte(h)); err != nil {
		return "", fmt.Errorf("token %q: storing: %w", name, err)
	}
	return token, nil
}

// DeleteToken revokes the token named name. Items it submitted keep its
// name; a new token given the same name may read them again (that is how
// a token is rotated).
func DeleteToken(kv kv.Records, name string) error {
	h, found, err := kv.Get([]byte(prefixTokenName + name))
	if err != nil {
		return fmt.Errorf("token %q: %w", name, err)
	}
	if !found {
		return fmt.Errorf("token %q: %w", name, ErrNoToken)
	}
	if err := kv.Delete([]byte(prefixToken + string(h))); err != nil {
		return fmt.Errorf("token %q: deleting: %w", name, err)
	}
	if err := kv.Delete([]byte(prefixTokenName + name)); err != nil {
		return fmt.Errorf("token %q: deleting: %w", name, err)
	}
	return nil
}

// ListTokens returns every token's record, by name.
func ListTokens(kv kv.Records) ([]TokenInfo, error) {
	var hashes []string
	if err := kv.Scan([]byte(prefixTokenName), func(_, v []byte) error {
		hashes = append(hashes, string(v))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	out := make([]TokenInfo, 0, len(hashes))
	for _, h := range hashes {
		info, err := tokenByHash(kv, h)
		if err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		out = append(out, *info)
	}
	return out, nil
}

// LookupToken returns the record of a presented token, or ErrNoToken.
func LookupToken(kv kv.Records, token string) (*TokenInfo, error) {
	// Anything that is not shaped like a token is refused before it is
	// hashed: a 10 MB Authorization header costs nothing.
	if len(token) != len(tokenPrefix)+base64.RawURLEncoding.EncodedLen(tokenBytes) || !strings.HasPrefix(token, tokenPrefix) {
		return nil, ErrNoToken
	}
	return tokenByHash(kv, tokenHash(token))
}

func tokenByHash(kv kv.Records, h string) (*TokenInfo, error) {
	v, found, err := kv.Get([]byte(prefixToken + h))
	if err != nil {
		return nil, fmt.Errorf("reading token: %w", err)
	}
	if !found {
		return nil, ErrNoToken
	}
	var info TokenInfo
	if err := json.Unmarshal(v, &info); err != nil {
		return nil, fmt.Errorf("decoding token record: %w", err)
	}
	return &info, nil
}
