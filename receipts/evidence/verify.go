package evidence

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/transparency-dev/merkle/proof"

	"certmail/receipts"
)

// Bounds on what Verify will work through, so a hostile bundle costs
// little: a real item has a handful of records, and a tree of 2^64 leaves
// needs at most 64 proof hashes.
const (
	maxRecords    = 10000
	maxProofLen   = 64
	maxBundleKeys = 100
)

// VerifyOptions says what, beyond the bundle itself, the verifier trusts
// or holds.
type VerifyOptions struct {
	// GatewayKey, if set, is the only key records and the checkpoint may
	// be signed with; the bundle's own gateway keys are then ignored.
	// Without it, the bundle proves only that its gateway keys signed.
	GatewayKey ed25519.PublicKey
	// Message, if set, is the message file M; its commitment (H(L,r,M),
	// or H(L,M) for an unsalted item) must be the bundle's hash.
	Message io.Reader
	// Salt is r, for checking Message against a salted commitment whose
	// salt the bundle does not release (the item was refused or expired,
	// so only the sender holds r, given at posting). When the bundle
	// releases r, a Salt given here must be the same.
	Salt *receipts.Salt
	// RequireComplete refuses a bundle whose completeness is not shown (a
	// version 1 bundle, without a signed head). Anyone can turn a version
	// 2 bundle into one by deleting its head and its last records, so a
	// verifier that needs the item's whole story sets this; certmail
	// verify does unless told --allow-incomplete.
	RequireComplete bool
	// RequirePinnedKey refuses a bundle when GatewayKey is not given. A
	// bundle names the keys that signed it, and a forger names their own:
	// records that verify only against the bundle's own keys prove nothing
	// about who made them. certmail verify sets this unless told
	// --trust-embedded-key.
	RequirePinnedKey bool
}

// ErrKeyNotPinned is returned (wrapped) when RequirePinnedKey is set and no
// GatewayKey was given.
var ErrKeyNotPinned = errors.New("gateway key not pinned")

// Verify checks a bundle offline: each record's signature, label, hash,
// seq and prev link, that the records follow the rules of an item's life,
// that each is in the tree of the signed checkpoint, the COD or refusal
// records carry, the gateway's signed head (that these are all the item's
// records as of the head's time), and (if given) the message file. It
// returns what the evidence shows, or an error naming the first thing that
// failed.
//
// A version 1 bundle has no head; it verifies, but the Verdict is not
// Complete: records after its last one may exist. A head vouches for
// completeness only as of its IssuedAt, so an older bundle (older head,
// fewer records) still verifies as complete as of then; the Verdict
// carries that time.
func Verify(b *Bundle, opts VerifyOptions) (*Verdict, error) {
	if b == nil {
		return nil, errors.New("no bundle")
	}
	if b.Version != BundleVersion && b.Version != bundleVersionNoHead {
		return nil, fmt.Errorf("bundle version %d, want %d (or %d, without a signed head)",
			b.Version, BundleVersion, bundleVersionNoHead)
	}
	if b.Version == bundleVersionNoHead && b.Head != "" {
		// A head the verifier would ignore must not look checked.
		return nil, fmt.Errorf("head: bundle version %d has a head, which only version %d bundles carry", b.Version, BundleVersion)
	}
	if err := checkLabel(b.Label); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	hash, err := receipts.ParseHash(b.Hash)
	if err != nil {
		return nil, fmt.Errorf("bundle hash: %w", err)
	}
	gatewayKeys, err := trustedGatewayKeys(b, opts.GatewayKey)
	if err != nil {
		return nil, err
	}
	head, err := verifyCheckpoint(b, gatewayKeys)
	if err != nil {
		return nil, err
	}
	parties, err := partyKeys(b.Parties)
	if err != nil {
		return nil, err
	}
	v := &Verdict{Label: b.Label, Hash: b.Hash, Gateway: b.Gateway, Checkpoint: head,
		GatewayKeyPinned: opts.GatewayKey != nil}
	if err := verifyRecords(b, hash, gatewayKeys, parties, head, v); err != nil {
		return nil, err
	}
	if b.Version != bundleVersionNoHead {
		bh, err := verifyHead(b, hash, gatewayKeys, head)
		if err != nil {
			return nil, err
		}
		v.Complete, v.HeadIssuedAt = true, bh.IssuedAt
	}
	if opts.RequireComplete && !v.Complete {
		return nil, fmt.Errorf("incomplete: a version %d bundle has no signed head, so records may have been dropped from its end (accept it knowingly with certmail verify --allow-incomplete)", b.Version)
	}
	if opts.RequirePinnedKey && opts.GatewayKey == nil {
		// Checked last, so that a bundle broken in itself is reported as
		// such; a sound one still fails: its signatures check out only
		// against keys it carries itself.
		var kids []string
		for kid := range gatewayKeys {
			kids = append(kids, kid)
		}
		sort.Strings(kids)
		return nil, fmt.Errorf("%w: the bundle verifies against the key it carries itself (%s), which anyone can make; pin the gateway's key (certmail verify --gateway-key FILE, from certmail key show --gateway or GET /v1/keys), or accept the embedded key knowingly with --trust-embedded-key",
			ErrKeyNotPinned, strings.Join(kids, ", "))
	}
	// The message last: what it is checked against is only worth
	// anything once the records' key is one the caller trusts.
	if opts.Message != nil {
		if err := checkMessage(b, hash, v, opts); err != nil {
			return nil, fmt.Errorf("message: %w", err)
		}
		v.MessageChecked = true
	}
	return v, nil
}

// checkMessage checks the message file against the item's commitment, of
// the version its COP names, with the salt the bundle releases or (if it
// releases none) the one the caller holds.
func checkMessage(b *Bundle, hash [32]byte, v *Verdict, opts VerifyOptions) error {
	var salt *receipts.Salt
	switch v.Commitment {
	case receipts.CommitmentUnsalted:
		if opts.Salt != nil {
			return errors.New("the item's H(L,M) is unsalted (posted before commitments were salted): no salt applies")
		}
	case receipts.CommitmentSalted:
		salt = opts.Salt
		if v.Salt != "" {
			released, err := receipts.ParseSalt(v.Salt)
			if err != nil {
				return err
			}
			if salt != nil && *salt != released {
				return fmt.Errorf("the salt given is %s, but the gateway released %s", salt, v.Salt)
			}
			salt = &released
		}
		if salt == nil {
			return errors.New("the item's commitment H(L,r,M) is salted and this bundle releases no salt r (the message was not released): give the salt the sender was given at posting")
		}
	}
	sum, err := receipts.CommitmentReader(v.Commitment, b.Label, salt, opts.Message)
	if err != nil {
		return err
	}
	if sum != hash {
		return fmt.Errorf("%s is %s, the evidence names %s", v.CommitmentName(), receipts.FormatHash(sum), b.Hash)
	}
	return nil
}

// trustedGatewayKeys returns the keys records may be signed with, by kid.
func trustedGatewayKeys(b *Bundle, pinned ed25519.PublicKey) (map[string]ed25519.PublicKey, error) {
	keys := make(map[string]ed25519.PublicKey)
	if pinned != nil {
		kid, err := KeyID(pinned)
		if err != nil {
			return nil, fmt.Errorf("pinned gateway key: %w", err)
		}
		keys[kid] = pinned
		return keys, nil
	}
	if len(b.GatewayKeys) == 0 || len(b.GatewayKeys) > maxBundleKeys {
		return nil, fmt.Errorf("bundle has %d gateway keys, want 1 to %d", len(b.GatewayKeys), maxBundleKeys)
	}
	for i, j := range b.GatewayKeys {
		pub, err := j.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("gateway key %d: %w", i, err)
		}
		keys[j.Kid] = pub
	}
	return keys, nil
}

// verifyCheckpoint checks that the checkpoint's note key is one of the
// trusted gateway keys, and its signature.
func verifyCheckpoint(b *Bundle, gatewayKeys map[string]ed25519.PublicKey) (TreeHead, error) {
	nv, err := note.NewVerifier(b.NoteVerifierKey)
	if err != nil {
		return TreeHead{}, fmt.Errorf("checkpoint verifier key: %w", err)
	}
	trusted := false
	for _, pub := range gatewayKeys {
		if vkey, err := VerifierKey(nv.Name(), pub); err == nil && vkey == b.NoteVerifierKey {
			trusted = true
			break
		}
	}
	if !trusted {
		return TreeHead{}, fmt.Errorf("checkpoint verifier key %q is not a trusted gateway key", b.NoteVerifierKey)
	}
	head, err := ParseCheckpoint([]byte(b.Checkpoint), b.NoteVerifierKey)
	if err != nil {
		return TreeHead{}, err
	}
	return head, nil
}

// partyKeys parses the recipients' keys, by kid.
func partyKeys(list []PartyKey) (map[string]party, error) {
	if len(list) > maxBundleKeys {
		return nil, fmt.Errorf("bundle has %d party keys, more than %d", len(list), maxBundleKeys)
	}
	parties := make(map[string]party, len(list))
	for _, p := range list {
		pub, err := p.JWK.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("key of %q: %w", p.Name, err)
		}
		if old, dup := parties[p.JWK.Kid]; dup && old.name != p.Name {
			return nil, fmt.Errorf("key %q is listed for both %q and %q", p.JWK.Kid, old.name, p.Name)
		}
		parties[p.JWK.Kid] = party{name: p.Name, key: pub}
	}
	return parties, nil
}

func verifyRecords(b *Bundle, hash [32]byte, gatewayKeys map[string]ed25519.PublicKey,
	parties map[string]party, head TreeHead, v *Verdict) error {
	if len(b.Records) == 0 || len(b.Records) > maxRecords {
		return fmt.Errorf("bundle has %d records, want 1 to %d", len(b.Records), maxRecords)
	}
	c := &chain{}
	for i, br := range b.Records {
		hdr, payload, err := openJWS(br.JWS, RecordJWSType, gatewayKeys)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		r, err := parsePayload(payload)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("record %d (%s): %s", i, r.Type, fmt.Sprintf(format, args...))
		}
		switch {
		case r.Gateway != b.Gateway:
			return fail("gateway %q, the bundle is from %q", r.Gateway, b.Gateway)
		case r.Label != b.Label:
			return fail("label %q, the bundle is for %q", r.Label, b.Label)
		case r.Hash != hash:
			return fail("hash %s, the bundle is for %s", receipts.FormatHash(r.Hash), b.Hash)
		}
		if err := c.apply(r, RecordDigest(br.JWS)); err != nil {
			return fail("%v", err)
		}
		if i > 0 && br.LeafIndex <= b.Records[i-1].LeafIndex {
			return fail("leaf index %d is not after record %d's %d", br.LeafIndex, i-1, b.Records[i-1].LeafIndex)
		}
		if err := verifyInclusion(br, head); err != nil {
			return fail("%v", err)
		}
		var cod *codClaims
		if r.Type == ConsignmentAcceptance || r.Type == ConsignmentRejection {
			claims, err := checkCOD(r, c, parties)
			if err != nil {
				return fail("%v", err)
			}
			cod = &claims
		}
		v.add(r, hdr.Kid, br.LeafIndex, cod)
	}
	v.State = c.state
	v.Commitment, v.Salt = c.commitment, c.salt
	return nil
}

func verifyInclusion(br BundleRecord, head TreeHead) error {
	if br.LeafIndex >= head.Size {
		return fmt.Errorf("leaf index %d is outside the checkpoint's tree of size %d", br.LeafIndex, head.Size)
	}
	if len(br.InclusionProof) > maxProofLen {
		return fmt.Errorf("inclusion proof has %d hashes, more than %d", len(br.InclusionProof), maxProofLen)
	}
	err := proof.VerifyInclusion(hasher, br.LeafIndex, head.Size, LeafHash(br.JWS), br.InclusionProof, head.Root)
	if err != nil {
		return fmt.Errorf("not in the checkpoint's tree (size %d): %w", head.Size, err)
	}
	return nil
}
