package receipts

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// A COD is CEM-ip's certificate of delivery, COD = sig_B(P, L, H(L,M)): B's
// signature over the gateway, the label and the item's commitment (its
// "hash": the salted H(L,r,M) of CommitmentSalted, or the unsalted H(L,M)
// of items posted before), made before B has seen M. A refusal has the same form with type "refusal". On the wire
// it is a compact JWS (RFC 7515) with EdDSA over RFC 8785 canonical JSON,
// so that any JOSE library can check it and every COD has exactly one
// payload encoding.

// CODMediaType is the JWS "typ" of a COD, and a MIME type it may travel as.
const CODMediaType = "certmail-cod+jws"

// CODVersion is the payload's "v".
const CODVersion = 1

// maxCODSize bounds a compact COD. Real ones are about 500 bytes.
const maxCODSize = 8 << 10

// Decision is what B decided about an item.
type Decision string

const (
	DecisionCOD     Decision = "cod"     // B acknowledges the item
	DecisionRefusal Decision = "refusal" // B refuses it
)

// Custody says who held the key that signed a COD, which the evidence
// records: the gateway (sealed under B's password, see SealKey) or B.
type Custody string

const (
	CustodyGatewayHeld   Custody = "gateway-held"
	CustodyRecipientHeld Custody = "recipient-held"
)

var (
	// ErrMalformedCOD is wrapped by every error about a COD's syntax.
	ErrMalformedCOD = errors.New("malformed COD")
	// ErrCODSignature means a well-formed COD does not verify under the
	// key it was checked with.
	ErrCODSignature = errors.New("COD signature does not verify")
	// ErrCODMismatch means a valid COD is about another item or gateway.
	ErrCODMismatch = errors.New("COD does not match the item")
	// ErrCODTime means a COD's signed_at cannot be true: before its item
	// was posted, after its deadline, or after it was handed in.
	ErrCODTime = errors.New("COD signed_at is outside the item's life")
)

// CODClockTolerance is how far a COD's signed_at may fall outside the
// window from posting to deadline (or after the moment the gateway
// received it) before the COD is refused: the signer's clock and the
// gateway's may differ by a little, never by hours. The gateway (when a
// COD is handed in) and the evidence verifier both apply it through
// CheckSignedAt; this is the one place it is set.
const CODClockTolerance = 5 * time.Minute

// CheckSignedAt reports whether a COD or refusal signed at signedAt can be
// about an item posted at posted whose deadline is deadline (zero: none),
// and was received by the gateway at received (zero: not known). A COD
// dated before its item existed, or after the deadline by which it had to
// be given, says something false about when B decided, and a verdict that
// prints it would repeat the falsehood.
func CheckSignedAt(signedAt, posted, deadline, received time.Time) error {
	tol := CODClockTolerance
	switch {
	case signedAt.Before(posted.Add(-tol)):
		return fmt.Errorf("%w: signed at %s, before the item was posted at %s (tolerance %s)",
			ErrCODTime, signedAt.UTC().Format(time.RFC3339), posted.UTC().Format(time.RFC3339), tol)
	case !deadline.IsZero() && signedAt.After(deadline.Add(tol)):
		return fmt.Errorf("%w: signed at %s, after the deadline %s (tolerance %s)",
			ErrCODTime, signedAt.UTC().Format(time.RFC3339), deadline.UTC().Format(time.RFC3339), tol)
	case !received.IsZero() && signedAt.After(received.Add(tol)):
		return fmt.Errorf("%w: signed at %s, after the gateway received it at %s (tolerance %s)",
			ErrCODTime, signedAt.UTC().Format(time.RFC3339), received.UTC().Format(time.RFC3339), tol)
	}
	return nil
}

// CODClaims is a COD's payload.
type CODClaims struct {
	V         int       `json:"v"`
	Type      Decision  `json:"type"`
	Gateway   string    `json:"gateway"`   // P
	Label     string    `json:"label"`     // L
	Hash      string    `json:"hash"`      // the commitment, H(L,r,M) or H(L,M), as "sha256:<hex>"
	Recipient string    `json:"recipient"` // B
	Custody   Custody   `json:"custody"`
	SignedAt  time.Time `json:"signed_at"` // whole seconds, UTC
}

// codPayload is the exact wire form. SignedAt is a string because
// time.Time would marshal fractional seconds.
type codPayload struct {
	V         int      `json:"v"`
	Type      Decision `json:"type"`
	Gateway   string   `json:"gateway"`
	Label     string   `json:"label"`
	Hash      string   `json:"hash"`
	Recipient string   `json:"recipient"`
	Custody   Custody  `json:"custody"`
	SignedAt  string   `json:"signed_at"`
}

// codPayloadFields are the payload's members, all required, no others.
var codPayloadFields = []string{"custody", "gateway", "hash", "label", "recipient", "signed_at", "type", "v"}

// signedAtLayout is RFC 3339 in UTC with whole seconds: one spelling per
// instant.
const signedAtLayout = "2006-01-02T15:04:05Z"

// SignCOD signs claims with priv and returns the compact JWS. SignedAt is
// truncated to whole seconds in UTC; the claims must otherwise be exactly
// what ParseCOD accepts, so nothing is signed that cannot be read back.
func SignCOD(priv ed25519.PrivateKey, claims CODClaims) (string, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("sign COD: Ed25519 private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	claims.SignedAt = claims.SignedAt.UTC().Truncate(time.Second)
	if err := claims.validate(); err != nil {
		return "", fmt.Errorf("sign COD: %w", err)
	}
	payload, err := claims.canonicalPayload()
	if err != nil {
		return "", fmt.Errorf("sign COD: %w", err)
	}
	header, err := codHeader(KeyID(priv.Public().(ed25519.PublicKey)))
	if err != nil {
		return "", fmt.Errorf("sign COD: %w", err)
	}
	signingInput := b64(header) + "." + b64(payload)
	sig := ed25519.Sign(priv, []byte(signingInput))
	return signingInput + "." + b64(sig), nil
}

// VerifyCOD parses compact, checks that its kid names pub and that pub's
// signature verifies, and returns the claims. It does not check what the
// COD is about; see CODClaims.Check.
func VerifyCOD(compact string, pub ed25519.PublicKey) (*CODClaims, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify COD: Ed25519 public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	jws, err := parseCompactCOD(compact)
	if err != nil {
		return nil, err
	}
	if want := KeyID(pub); jws.kid != want {
		return nil, fmt.Errorf("%w: signed by key %s, not by key %s", ErrCODSignature, jws.kid, want)
	}
	if !ed25519.Verify(pub, []byte(jws.signingInput), jws.signature) {
		return nil, fmt.Errorf("%w (key %s)", ErrCODSignature, jws.kid)
	}
	return jws.claims, nil
}

// ParseCOD checks a COD's syntax strictly, without its signature, and
// returns the claims and the kid of the key that claims to have signed it.
// Surrounding whitespace is ignored (a COD handed in by IMAP APPEND often
// ends in a newline). Errors wrap ErrMalformedCOD.
func ParseCOD(compact string) (*CODClaims, string, error) {
	jws, err := parseCompactCOD(compact)
	if err != nil {
		return nil, "", err
	}
	return jws.claims, jws.kid, nil
}

// Check reports whether the COD is about this item at this gateway, and if
// not says every field that differs. Whether it acknowledges or refuses is
// for the caller to read from Type.
func (c *CODClaims) Check(gateway, label string, hash [32]byte) error {
	var diffs []string
	if c.Gateway != gateway {
		diffs = append(diffs, fmt.Sprintf("gateway is %q, want %q", c.Gateway, gateway))
	}
	if c.Label != label {
		diffs = append(diffs, fmt.Sprintf("label is %q, want %q", c.Label, label))
	}
	if want := FormatHash(hash); c.Hash != want {
		diffs = append(diffs, fmt.Sprintf("hash is %s, want %s", c.Hash, want))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: %s", ErrCODMismatch, strings.Join(diffs, "; "))
	}
	return nil
}

func (c *CODClaims) canonicalPayload() ([]byte, error) {
	raw, err := json.Marshal(codPayload{
		V:         c.V,
		Type:      c.Type,
		Gateway:   c.Gateway,
		Label:     c.Label,
		Hash:      c.Hash,
		Recipient: c.Recipient,
		Custody:   c.Custody,
		SignedAt:  c.SignedAt.UTC().Format(signedAtLayout),
	})
	if err != nil {
		return nil, err
	}
	return jcs.Transform(raw)
}

// validate checks every field's value, with the message a user needs to
// fix it.
func (c *CODClaims) validate() error {
	if c.V != CODVersion {
		return fmt.Errorf("v is %d, want %d", c.V, CODVersion)
	}
	switch c.Type {
	case DecisionCOD, DecisionRefusal:
	default:
		return fmt.Errorf("type is %q, want %q or %q", truncateForError(string(c.Type)), DecisionCOD, DecisionRefusal)
	}
	if err := checkName("gateway", c.Gateway, 255); err != nil {
		return err
	}
	if err := checkLabel(c.Label); err != nil {
		return err
	}
	if err := checkCanonicalHash(c.Hash); err != nil {
		return err
	}
	if err := checkName("recipient", c.Recipient, 320); err != nil {
		return err
	}
	switch c.Custody {
	case CustodyGatewayHeld, CustodyRecipientHeld:
	default:
		return fmt.Errorf("custody is %q, want %q or %q", truncateForError(string(c.Custody)), CustodyGatewayHeld, CustodyRecipientHeld)
	}
	if c.SignedAt.IsZero() {
		return errors.New("signed_at is missing")
	}
	if y := c.SignedAt.Year(); y < 2000 || y > 9999 {
		return fmt.Errorf("signed_at year %d is out of range", y)
	}
	return nil
}

// checkName accepts a gateway or recipient name: non-empty UTF-8, at most
// max bytes, no control characters and no surrounding space, so that two
// CODs for the same party compare equal as strings.
func checkName(field, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", field)
	case len(s) > max:
		return fmt.Errorf("%s is %d bytes long, at most %d allowed", field, len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", field)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%s %q has surrounding white space", field, truncateForError(s))
	case strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Errorf("%s %q contains control characters", field, truncateForError(s))
	}
	return nil
}

// checkCanonicalHash accepts only "sha256:" and 64 lower-case hex digits,
// the one spelling FormatHash produces.
func checkCanonicalHash(s string) error {
	sum, err := ParseHash(s)
	if err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	if FormatHash(sum) != s {
		return fmt.Errorf("hash %q: hex digits must be lower case", s)
	}
	return nil
}

// codHeader is the protected header, in canonical JSON like the payload.
func codHeader(kid string) ([]byte, error) {
	raw, err := json.Marshal(map[string]string{"alg": "EdDSA", "kid": kid, "typ": CODMediaType})
	if err != nil {
		return nil, err
	}
	return jcs.Transform(raw)
}

// parsedCOD is a syntactically valid COD, not yet verified.
type parsedCOD struct {
	claims       *CODClaims
	kid          string
	signingInput string
	signature    []byte
}

func malformedCOD(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedCOD, fmt.Sprintf(format, args...))
}

var strictB64 = base64.RawURLEncoding.Strict()

func parseCompactCOD(compact string) (*parsedCOD, error) {
	compact = strings.TrimSpace(compact)
	if compact == "" {
		return nil, malformedCOD("empty")
	}
	if len(compact) > maxCODSize {
		return nil, malformedCOD("%d bytes is too long for a COD (at most %d)", len(compact), maxCODSize)
	}
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		return nil, malformedCOD("a compact JWS has 3 dot-separated parts, this has %d", len(parts))
	}
	header, err := decodeB64Part("protected header", parts[0])
	if err != nil {
		return nil, err
	}
	kid, err := parseCODHeader(header)
	if err != nil {
		return nil, err
	}
	payload, err := decodeB64Part("payload", parts[1])
	if err != nil {
		return nil, err
	}
	claims, err := parseCODPayload(payload)
	if err != nil {
		return nil, err
	}
	sig, err := decodeB64Part("signature", parts[2])
	if err != nil {
		return nil, err
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, malformedCOD("signature has %d bytes, an Ed25519 signature has %d", len(sig), ed25519.SignatureSize)
	}
	return &parsedCOD{claims: claims, kid: kid, signingInput: parts[0] + "." + parts[1], signature: sig}, nil
}

func decodeB64Part(name, s string) ([]byte, error) {
	if s == "" {
		return nil, malformedCOD("%s is empty", name)
	}
	b, err := strictB64.DecodeString(s)
	if err != nil {
		return nil, malformedCOD("%s is not unpadded base64url: %v", name, err)
	}
	return b, nil
}

// parseJSONObject parses data as one JSON object with no duplicate members
// and returns its members. jcs rejects duplicates, which encoding/json
// would silently resolve to the last.
func parseJSONObject(what string, data []byte) (map[string]json.RawMessage, error) {
	if _, err := jcs.Transform(data); err != nil {
		return nil, malformedCOD("%s is not valid JSON: %v", what, err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil || members == nil {
		return nil, malformedCOD("%s is not a JSON object", what)
	}
	return members, nil
}

// parseCODHeader accepts exactly {"alg":"EdDSA","kid":...,"typ":...} in
// any member order, since other JOSE libraries may order them differently.
// Anything else, "crit" or "jwk" above all, is refused: a verifier must not
// be told which key to trust by the thing it is verifying.
func parseCODHeader(header []byte) (kid string, err error) {
	members, err := parseJSONObject("protected header", header)
	if err != nil {
		return "", err
	}
	if err := checkMemberNames("protected header", members, []string{"alg", "kid", "typ"}); err != nil {
		return "", err
	}
	var alg, typ string
	for name, dst := range map[string]*string{"alg": &alg, "kid": &kid, "typ": &typ} {
		if err := json.Unmarshal(members[name], dst); err != nil {
			return "", malformedCOD("protected header %q is not a string", name)
		}
	}
	if alg != "EdDSA" {
		return "", malformedCOD("alg is %q, want \"EdDSA\"", truncateForError(alg))
	}
	if typ != CODMediaType {
		return "", malformedCOD("typ is %q, want %q", truncateForError(typ), CODMediaType)
	}
	if b, err := strictB64.DecodeString(kid); err != nil || len(b) != 32 {
		return "", malformedCOD("kid %q is not a JWK SHA-256 thumbprint", truncateForError(kid))
	}
	return kid, nil
}

func parseCODPayload(payload []byte) (*CODClaims, error) {
	members, err := parseJSONObject("payload", payload)
	if err != nil {
		return nil, err
	}
	if err := checkMemberNames("payload", members, codPayloadFields); err != nil {
		return nil, err
	}
	var p codPayload
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, malformedCOD("payload: %v", err)
	}
	// time.Parse would also take fractional seconds, so compare the
	// spelling too.
	signedAt, err := time.Parse(signedAtLayout, p.SignedAt)
	if err != nil || signedAt.Format(signedAtLayout) != p.SignedAt {
		return nil, malformedCOD("signed_at %q is not RFC 3339 UTC with whole seconds, like \"2006-01-02T15:04:05Z\"", truncateForError(p.SignedAt))
	}
	claims := &CODClaims{
		V:         p.V,
		Type:      p.Type,
		Gateway:   p.Gateway,
		Label:     p.Label,
		Hash:      p.Hash,
		Recipient: p.Recipient,
		Custody:   p.Custody,
		SignedAt:  signedAt,
	}
	if err := claims.validate(); err != nil {
		return nil, malformedCOD("%v", err)
	}
	canonical, err := claims.canonicalPayload()
	if err != nil {
		return nil, malformedCOD("payload: %v", err)
	}
	if !bytes.Equal(canonical, payload) {
		return nil, malformedCOD("payload is not RFC 8785 canonical JSON")
	}
	return claims, nil
}

// checkMemberNames wants exactly the names in want (sorted), and says which
// are missing or unexpected. Names are compared exactly: encoding/json
// alone would accept "V" for "v".
func checkMemberNames(what string, members map[string]json.RawMessage, want []string) error {
	var missing, extra []string
	for _, name := range want {
		if _, ok := members[name]; !ok {
			missing = append(missing, name)
		}
	}
	for name := range members {
		if !slices.Contains(want, name) {
			extra = append(extra, fmt.Sprintf("%q", truncateForError(name)))
		}
	}
	slices.Sort(extra)
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "missing "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		problems = append(problems, "unexpected "+strings.Join(extra, ", "))
	}
	if len(problems) > 0 {
		return malformedCOD("%s: %s", what, strings.Join(problems, "; "))
	}
	return nil
}
